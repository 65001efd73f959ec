"""The example agent graph: a fact stored in thread 1 is recalled in thread 2 through MemosdStore."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from langchain_core.callbacks import BaseCallbackHandler

from memosd_langgraph import MemosdStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "memory_agent.py"


def _example():
    spec = importlib.util.spec_from_file_location("memosd_langgraph_memory_agent", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


class PromptLog(BaseCallbackHandler):
    """Keeps every prompt the chat model was given."""

    def __init__(self):
        self.prompts = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.prompts.extend(messages)


def test_thread_two_recalls_what_thread_one_stored(lg_daemon, prefix):
    example = _example()
    log = PromptLog()
    with MemosdStore(lg_daemon.endpoint, prefix=prefix) as store:
        talk = example.run(store, callbacks=[log])
        # Thread 2 is its own conversation: none of thread 1's messages are in it.
        assert [m.content for m in talk.thread_2["messages"]] == ["Which bike do I ride?", "You ride a blue Brompton."]
        assert talk.thread_2["recalled"] == ["my bike is a blue Brompton"]
        system = log.prompts[1][0].content
        assert "my bike is a blue Brompton" in system
        # The fact came back ranked by memosd, and it is stored for this user only.
        [hit] = store.search(("memories", "alice"), query="Which bike do I ride?")
        assert hit.score is not None
        assert store.search(("memories", "bob")) == []
        assert store.list_namespaces() == [("memories", "alice")]
        # Saying it again changes nothing: one item per distinct fact.
        example.run(store)
        assert len(store.search(("memories",))) == 1


def test_example_script_runs_offline():
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    thread_2 = done.stdout.split("== thread 2", 1)[1]
    assert "recalled: ['my bike is a blue Brompton']" in thread_2
    assert "Remember that" not in thread_2
