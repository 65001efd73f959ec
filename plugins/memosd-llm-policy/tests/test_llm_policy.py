"""Tests of the llm consolidation policy.

NO LANGUAGE MODEL RUNS IN THESE TESTS. They run against a small local HTTP
server (``fake_chat_server.py``: http.server in a thread on 127.0.0.1, a random
port) that speaks the chat-completions API and answers with replies scripted by
each test. What is tested is the policy's side: the request it sends, how it
validates and maps answers, retries, timeouts, budget and token accounting.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from importlib.metadata import entry_points

import pytest

from fake_chat_server import FakeChatServer, Reply, completion
from memosd.plugins.api import ConsolidationPolicy, PageView, TurnView
from memosd_llm_policy import (
    BudgetExhausted,
    ConfigError,
    InvalidResponse,
    LlmConfig,
    LlmPolicy,
    NotConfigured,
    RequestFailed,
)

SESSION = datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc).timestamp()  # a Monday


def _turn(turn_id: int, text: str, event_time: float | None = SESSION) -> TurnView:
    return TurnView(id=turn_id, text=text, session="session_1", source="locomo", event_time=event_time,
                    created_at=SESSION)


PAGE = PageView(namespace="conv-26", page_id=7, turns=(
    _turn(101, "Caroline: I went to a LGBTQ support group yesterday and it was so powerful."),
    _turn(102, "Melanie: That's great! I painted a sunset last weekend."),
    _turn(103, "Caroline: I'm going to Sweden in June to see my grandma."),
))

GOOD = {
    "summary": "Caroline talks about a support group; Melanie about painting; Caroline plans a trip.",
    "keywords": ["support group", "painting", "Sweden", "painting"],
    "facts": [
        {"text": "Caroline went to an LGBTQ support group.", "sources": [101], "date": "yesterday"},
        {"text": "Melanie painted a sunset.", "sources": ["102"], "date": "last weekend"},
        {"text": "Caroline will visit her grandma in Sweden.", "sources": [103], "date": "2023-06"},
        {"text": "Caroline and Melanie are friends.", "sources": [101, 102], "date": None},
    ],
    "entities": [{"name": "Caroline", "sources": [101, 103]}, {"name": "Sweden"},
                 {"name": "Melanie", "sources": [102]}],
}


@pytest.fixture
def server():
    with FakeChatServer() as fake:
        yield fake


def _config(server: FakeChatServer, **overrides) -> LlmConfig:
    # Short timeouts and back-off keep every test well under a second or two.
    settings = dict(url=server.url, model="test-model", timeout_s=1.0, deadline_s=10.0, max_retries=2,
                    backoff_s=0.01, max_tokens=256)
    settings.update(overrides)
    return LlmConfig(**settings)


def test_good_answer_becomes_a_consolidation_with_provenance(server):
    server.push(completion(GOOD, prompt_tokens=812, completion_tokens=96))
    policy = LlmPolicy(_config(server))
    result = policy.consolidate(PAGE)

    assert isinstance(policy, ConsolidationPolicy)
    assert result.summary == GOOD["summary"]
    assert result.keywords == ("support group", "painting", "Sweden")  # duplicates removed
    assert [f.text for f in result.facts] == [f["text"] for f in GOOD["facts"]]
    assert [f.sources for f in result.facts] == [(101,), (102,), (103,), (101, 102)]
    by_text = {f.text: f for f in result.facts}
    # Relative dates are resolved against the source turn's session date (Monday 2023-05-08).
    support = by_text["Caroline went to an LGBTQ support group."]
    assert support.event_time == datetime(2023, 5, 7, tzinfo=timezone.utc).timestamp()
    assert support.meta == {"model": "test-model", "when": "yesterday", "date": "2023-05-07", "granularity": "day"}
    assert by_text["Melanie painted a sunset."].meta["date"] == "2023-05-06"  # the Saturday before
    assert by_text["Caroline will visit her grandma in Sweden."].meta["granularity"] == "month"
    assert by_text["Caroline and Melanie are friends."].event_time is None
    entities = {e.name: e.sources for e in result.entities}
    assert entities == {"Caroline": (101, 103), "Sweden": (103,), "Melanie": (102,)}  # Sweden: found in the text
    assert result.usage["prompt_tokens"] == 812 and result.usage["completion_tokens"] == 96
    assert result.usage["requests"] == 1 and result.usage["retries"] == 0


def test_request_carries_model_messages_sampling_and_bearer_key(server):
    server.push(completion(GOOD))
    LlmPolicy(_config(server, api_key="sk-test", seed=7)).consolidate(PAGE)

    (seen,) = server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["content-type"] == "application/json"
    body = seen.body
    assert body["model"] == "test-model" and body["temperature"] == 0.0 and body["max_tokens"] == 256
    assert body["seed"] == 7 and body["stream"] is False
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system" and "JSON" in system["content"]
    assert user["role"] == "user"
    assert "Session date: 2023-05-08 (Monday)" in user["content"]
    assert "[101] Caroline: I went to a LGBTQ support group" in user["content"]


def test_no_authorization_header_without_a_key(server):
    server.push(completion(GOOD))
    LlmPolicy(_config(server)).consolidate(PAGE)
    assert "authorization" not in server.requests[0].headers


def test_usage_accumulates_across_calls_and_retries(server):
    server.push(completion("not json at all", prompt_tokens=50, completion_tokens=5),
                completion(GOOD, prompt_tokens=60, completion_tokens=30),
                completion(GOOD, prompt_tokens=70, completion_tokens=40))
    policy = LlmPolicy(_config(server))
    first = policy.consolidate(PAGE)
    # The unusable first answer was paid for too: it counts in this call's usage.
    assert first.usage["prompt_tokens"] == 110 and first.usage["completion_tokens"] == 35
    assert first.usage["total_tokens"] == 145 and first.usage["requests"] == 2 and first.usage["retries"] == 1
    second = policy.consolidate(PAGE)
    assert second.usage["total_tokens"] == 110 and second.usage["requests"] == 1
    assert policy.totals() == {"prompt_tokens": 180, "completion_tokens": 75, "total_tokens": 255,
                               "requests": 3, "retries": 1}


def test_missing_usage_is_estimated(server):
    server.push(completion(GOOD, prompt_tokens=None))
    result = LlmPolicy(_config(server)).consolidate(PAGE)
    assert result.usage["estimated"] == 1 and result.usage["prompt_tokens"] > 0


def test_sources_outside_the_page_are_dropped(server):
    answer = {
        "summary": "s",
        "facts": [
            {"text": "kept with its valid source only", "sources": [999, 102, True, 2.5, "[103]"]},
            {"text": "invented turn", "sources": [999]},
            {"text": "no sources at all"},
            {"text": "", "sources": [101]},
            "not an object",
        ],
        "entities": [{"name": "Atlantis", "sources": [999]}, {"name": "Melanie", "sources": [555]}],
    }
    server.push(completion(answer))
    result = LlmPolicy(_config(server)).consolidate(PAGE)
    assert [(f.text, f.sources) for f in result.facts] == [("kept with its valid source only", (102, 103))]
    # Atlantis is named nowhere; Melanie's bad ids are replaced by the turns that name her.
    assert [(e.name, e.sources) for e in result.entities] == [("Melanie", (102,))]
    assert result.usage["facts_dropped"] == 4 and result.usage["entities_dropped"] == 1


def test_turns_left_out_of_the_prompt_are_not_valid_sources(server):
    long_page = replace(PAGE, turns=PAGE.turns + (_turn(104, "Melanie: " + "la " * 400),))
    server.push(completion({"summary": "s", "facts": [{"text": "late", "sources": [104]},
                                                       {"text": "early", "sources": [101]}]}))
    result = LlmPolicy(_config(server, max_prompt_chars=300)).consolidate(long_page)
    assert [f.text for f in result.facts] == ["early"]
    assert "later turns omitted" in server.requests[0].body["messages"][1]["content"]


def test_texts_and_counts_are_clamped(server):
    answer = {"summary": "x" * 5000, "keywords": [f"k{i}" for i in range(50)],
              "facts": [{"text": f"fact {i} " + "y" * 1000, "sources": [101]} for i in range(100)]}
    server.push(completion(answer))
    result = LlmPolicy(_config(server)).consolidate(PAGE)
    assert len(result.summary) == 500 and result.summary.endswith("…")
    assert len(result.keywords) == 12
    assert len(result.facts) == 32 and all(len(f.text) <= 400 for f in result.facts)


def test_code_fences_and_chatter_are_tolerated(server):
    server.push(completion("<think>let me see</think>Sure! Here it is:\n```json\n" + json.dumps(GOOD) + "\n```\n"))
    assert len(LlmPolicy(_config(server)).consolidate(PAGE).facts) == 4


def test_answer_with_nothing_valid_raises(server):
    server.default = completion({"summary": "", "facts": [{"text": "t", "sources": [999]}]})
    with pytest.raises(InvalidResponse, match="no summary and no fact"):
        LlmPolicy(_config(server)).consolidate(PAGE)
    assert len(server.requests) == 3  # retried, then given up


def test_malformed_json_is_retried_then_raises(server):
    server.default = completion('{"summary": "unterminated')
    with pytest.raises(InvalidResponse, match=r"no JSON object.*gave up after 3 requests"):
        LlmPolicy(_config(server)).consolidate(PAGE)
    assert len(server.requests) == 3


def test_answer_cut_at_max_tokens_is_not_retried(server):
    server.default = completion('{"summary": "cut', finish_reason="length")
    with pytest.raises(InvalidResponse, match="MEMOSD_LLM_MAX_TOKENS"):
        LlmPolicy(_config(server)).consolidate(PAGE)
    assert len(server.requests) == 1


def test_server_errors_are_retried_then_raise(server):
    server.default = Reply(status=500, body={"error": {"message": "boom"}})
    policy = LlmPolicy(_config(server))
    with pytest.raises(RequestFailed, match="HTTP 500.*boom") as caught:
        policy.consolidate(PAGE)
    assert caught.value.status == 500 and len(server.requests) == 3
    assert policy.totals()["requests"] == 3 and policy.totals()["retries"] == 2


def test_server_error_then_success(server):
    server.push(Reply(status=503), Reply(status=502, body="bad gateway"), completion(GOOD))
    result = LlmPolicy(_config(server)).consolidate(PAGE)
    assert result.usage["requests"] == 3 and result.usage["retries"] == 2


def test_429_honours_retry_after(server):
    server.push(Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "0.3"}), completion(GOOD))
    started = time.monotonic()
    result = LlmPolicy(_config(server, backoff_s=0.0)).consolidate(PAGE)
    assert time.monotonic() - started >= 0.3
    assert result.usage["retries"] == 1


def test_429_forever_raises(server):
    server.default = Reply(status=429, headers={"Retry-After": "0"})
    with pytest.raises(RequestFailed, match="HTTP 429"):
        LlmPolicy(_config(server, max_retries=1)).consolidate(PAGE)
    assert len(server.requests) == 2


def test_other_4xx_is_not_retried(server):
    server.default = Reply(status=401, body={"error": {"message": "invalid api key"}})
    with pytest.raises(RequestFailed, match="HTTP 401.*invalid api key") as caught:
        LlmPolicy(_config(server)).consolidate(PAGE)
    assert caught.value.status == 401 and len(server.requests) == 1


def test_server_without_response_format_gets_plain_requests(server):
    server.push(Reply(status=400, body={"error": {"message": "response_format is not supported"}}),
                completion(GOOD), completion(GOOD))
    policy = LlmPolicy(_config(server))
    assert policy.consolidate(PAGE).usage["requests"] == 2
    policy.consolidate(PAGE)
    assert ["response_format" in r.body for r in server.requests] == [True, False, False]


def test_hanging_server_hits_the_timeout(server):
    server.default = Reply(hang=True)
    policy = LlmPolicy(_config(server, timeout_s=0.3, max_retries=1))
    started = time.monotonic()
    with pytest.raises(RequestFailed, match="no answer within 0.3s"):
        policy.consolidate(PAGE)
    assert time.monotonic() - started < 2.0 and len(server.requests) == 2


def test_deadline_caps_the_whole_call(server):
    server.default = Reply(hang=True)
    policy = LlmPolicy(_config(server, timeout_s=1.0, deadline_s=0.4, max_retries=5))
    started = time.monotonic()
    with pytest.raises(RequestFailed):
        policy.consolidate(PAGE)
    assert time.monotonic() - started < 1.0


def test_unreachable_endpoint_is_retried_then_raises():
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = LlmPolicy(LlmConfig(url=f"http://127.0.0.1:{port}/v1", timeout_s=1.0, max_retries=1, backoff_s=0.01))
    with pytest.raises(RequestFailed, match="cannot reach"):
        policy.consolidate(PAGE)
    assert policy.totals()["requests"] == 2


def test_budget_exhaustion_raises_without_calling_the_server(server):
    server.push(completion(GOOD, prompt_tokens=900, completion_tokens=100))
    # Each request first reserves its worst case: prompt characters / 4 (~400 here) + max_tokens.
    policy = LlmPolicy(_config(server, token_budget=1500, max_tokens=256))
    policy.consolidate(PAGE)
    with pytest.raises(BudgetExhausted, match="1000 of 1500 tokens"):
        policy.consolidate(PAGE)
    assert len(server.requests) == 1


def test_budget_smaller_than_one_request_never_calls(server):
    with pytest.raises(BudgetExhausted, match="MEMOSD_LLM_TOKEN_BUDGET"):
        LlmPolicy(_config(server, token_budget=100)).consolidate(PAGE)
    assert server.requests == []


def test_budget_window_expires():
    from memosd_llm_policy.budget import TokenLedger

    now = [0.0]
    ledger = TokenLedger(budget=100, window_s=60, clock=lambda: now[0])
    ledger.settle(ledger.reserve(80), 90)
    with pytest.raises(BudgetExhausted):
        ledger.reserve(20)
    now[0] = 61.0
    ledger.reserve(20)
    assert ledger.used() == 20


def test_concurrent_calls_account_exactly(server):
    server.default = completion(GOOD, prompt_tokens=10, completion_tokens=1)
    policy = LlmPolicy(_config(server))
    threads = [threading.Thread(target=policy.consolidate, args=(PAGE,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert policy.totals()["total_tokens"] == 88 and policy.totals()["requests"] == 8


def test_no_url_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MEMOSD_LLM_URL", raising=False)
    with pytest.raises(NotConfigured, match="MEMOSD_LLM_URL"):
        LlmPolicy()
    with pytest.raises(NotConfigured, match="MEMOSD_LLM_URL"):
        LlmPolicy(LlmConfig(url=""))


def test_environment_configuration(monkeypatch, server):
    for name, value in {"URL": server.url, "MODEL": "qwen2.5-7b", "API_KEY": "k", "TIMEOUT_S": "2.5",
                        "MAX_RETRIES": "4", "MAX_TOKENS": "512", "TOKEN_BUDGET": "100000",
                        "MAX_TURN_CHARS": "300", "TEMPERATURE": "0.2", "JSON_MODE": "off"}.items():
        monkeypatch.setenv(f"MEMOSD_LLM_{name}", value)
    policy = LlmPolicy()
    config = policy.config
    assert (config.model, config.api_key, config.timeout_s, config.max_retries, config.max_tokens,
            config.token_budget, config.max_turn_chars, config.temperature, config.json_mode) == \
        ("qwen2.5-7b", "k", 2.5, 4, 512, 100000, 300, 0.2, "off")
    assert config.endpoint == server.url + "/chat/completions"
    server.push(completion(GOOD))
    policy.consolidate(PAGE)
    assert "response_format" not in server.requests[0].body and server.requests[0].body["temperature"] == 0.2


@pytest.mark.parametrize("name, value", [("TIMEOUT_S", "soon"), ("MAX_RETRIES", "-1"), ("JSON_MODE", "maybe"),
                                         ("URL", "ftp://example.org")])
def test_bad_settings_are_named_in_the_error(monkeypatch, name, value):
    monkeypatch.setenv("MEMOSD_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv(f"MEMOSD_LLM_{name}", value)
    with pytest.raises(ConfigError, match=f"MEMOSD_LLM_{name}"):
        LlmPolicy()


def test_entry_point_is_installed():
    if "llm" not in entry_points(group="memosd.policies").names:
        pytest.skip("install the plugin first: pip install -e plugins/memosd-llm-policy")
    (ep,) = [ep for ep in entry_points(group="memosd.policies") if ep.name == "llm"]
    assert ep.load() is LlmPolicy
