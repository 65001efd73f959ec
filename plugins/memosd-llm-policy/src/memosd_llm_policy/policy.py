"""The ``llm`` consolidation policy: one page in, one chat completion, a validated Consolidation out."""

from __future__ import annotations

import dataclasses
import time

from memosd.plugins.api import Consolidation, PageView

from .budget import USAGE_KEYS, TokenLedger
from .client import ChatClient, Completion, TransientError
from .config import LlmConfig
from .errors import InvalidResponse, LlmPolicyError, RequestFailed
from .parse import extract_json, to_consolidation
from .prompt import build_messages

MAX_BACKOFF_S = 8.0


class LlmPolicy:
    """memosd.policies ``llm``: satisfies :class:`memosd.plugins.ConsolidationPolicy`.

    Constructed with no arguments (as memosd does), it reads ``MEMOSD_LLM_*``
    from the environment and raises NotConfigured when ``MEMOSD_LLM_URL`` is
    unset. Every failure of ``consolidate`` raises an :class:`LlmPolicyError`
    subclass, after at most ``max_retries`` retries and within ``deadline_s``;
    memosd then consolidates the page with its built-in policy.
    """

    name = "llm"
    version = "1"

    def __init__(self, config: LlmConfig | None = None):
        self.config = LlmConfig.from_env() if config is None else config
        self.config.validate()
        self.model = self.config.model
        self._client = ChatClient(self.config)
        self._ledger = TokenLedger(self.config.token_budget, self.config.budget_window_s)

    def consolidate(self, page: PageView) -> Consolidation:
        """Summary, keywords, facts and entities of ``page``; ``usage`` holds this call's token accounting."""
        if not page.turns:
            raise InvalidResponse(f"page {page.page_id} has no turns")
        messages, shown = build_messages(page, self.config.max_turn_chars, self.config.max_prompt_chars)
        # The worst case this request can cost: its prompt (about four characters a token) and a full completion.
        estimate = sum(len(m["content"]) for m in messages) // 4 + self.config.max_tokens
        usage = dict.fromkeys(USAGE_KEYS, 0)
        deadline = time.monotonic() + self.config.deadline_s
        try:
            for attempt in range(self.config.max_retries + 1):
                completion, error = self._attempt(messages, estimate, deadline, usage)
                if completion is not None:
                    try:
                        result, dropped = to_consolidation(extract_json(completion.content), page, shown, self.model)
                        return dataclasses.replace(result, usage={**usage, **dropped})
                    except InvalidResponse as exc:
                        if completion.finish_reason == "length":
                            # At temperature 0 the same prompt would be cut at the same place again.
                            raise InvalidResponse(
                                f"the answer was cut at max_tokens={self.config.max_tokens} before its JSON was "
                                f"complete (raise MEMOSD_LLM_MAX_TOKENS)") from exc
                        error = exc
                if attempt == self.config.max_retries or not self._pause(attempt, error, deadline):
                    break
                usage["retries"] += 1
            raise _final(error, usage["requests"])
        finally:
            self._ledger.record(usage)

    def totals(self) -> dict[str, int]:
        """Lifetime usage of this policy object: prompt/completion/total tokens, requests, retries."""
        return self._ledger.totals()

    def _attempt(self, messages, estimate: int, deadline: float,
                 usage: dict[str, int]) -> tuple[Completion | None, Exception | None]:
        """One request, budget-checked and accounted; a transient failure is returned, others raised."""
        reservation = self._ledger.reserve(estimate)  # raises BudgetExhausted before anything is sent
        completion = None
        try:
            completion = self._client.complete(messages, deadline)
        except TransientError as exc:
            usage["requests"] += 1
            return None, exc
        except RequestFailed:
            usage["requests"] += 1
            raise
        finally:
            self._ledger.settle(reservation, 0 if completion is None else
                                completion.prompt_tokens + completion.completion_tokens)
        usage["requests"] += completion.requests
        usage["prompt_tokens"] += completion.prompt_tokens
        usage["completion_tokens"] += completion.completion_tokens
        usage["total_tokens"] += completion.prompt_tokens + completion.completion_tokens
        if not completion.usage_reported:
            usage["estimated"] = 1
        return completion, None

    def _pause(self, attempt: int, error: Exception | None, deadline: float) -> bool:
        """Back off before the next attempt; False when the deadline leaves no room for one."""
        delay = min(self.config.backoff_s * (2 ** attempt), MAX_BACKOFF_S)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = retry_after
        if time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        return True


def _final(error: Exception | None, requests: int) -> LlmPolicyError:
    """The error consolidate raises once it gives up, saying how many requests it made."""
    if isinstance(error, LlmPolicyError):
        return type(error)(f"{error} (gave up after {requests} requests)")
    return RequestFailed(f"{error} (gave up after {requests} requests)", status=getattr(error, "status", None))
