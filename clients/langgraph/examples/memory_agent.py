"""An agent graph that remembers across threads, with its long-term memory in memosd.

Thread 1: the user says "remember that ..."; the graph stores the fact in the
LangGraph store (``MemosdStore``), under ``("memories", <user id>)``.
Thread 2 is a new conversation (its own checkpointed messages): the graph
searches the store with the user's question and shows the model what it found.

It runs offline: the chat model is one of langchain_core's fake models with
scripted replies, and without ``--endpoint`` a temporary memosd daemon is
started (``memosd.testing.DaemonProcess``)::

    python clients/langgraph/examples/memory_agent.py
    python clients/langgraph/examples/memory_agent.py --endpoint ipc:///run/memosd/memosd.sock
"""

from __future__ import annotations

import argparse
import re
import uuid
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from memosd_langgraph import MemosdStore

REMEMBER = re.compile(r"^\s*remember that\s+(?P<fact>.+?)\s*$", re.IGNORECASE | re.DOTALL)


@dataclass
class UserContext:
    """Run context: whose memories the graph reads and writes."""

    user_id: str


class State(MessagesState):
    recalled: list[str]


def _namespace(runtime: Runtime[UserContext]) -> tuple[str, ...]:
    return ("memories", runtime.context.user_id)


def memorize(state: State, runtime: Runtime[UserContext]) -> dict:
    """Store a fact the user asked to be remembered (one item per distinct fact)."""
    match = REMEMBER.match(state["messages"][-1].content)
    if match:
        fact = match["fact"]
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, fact.lower()))
        runtime.store.put(_namespace(runtime), key, {"fact": fact})
    return {}


def recall(state: State, runtime: Runtime[UserContext]) -> dict:
    """Search the user's memories with the latest message (memosd ranks them)."""
    items = runtime.store.search(_namespace(runtime), query=state["messages"][-1].content, limit=3)
    return {"recalled": [item.value["fact"] for item in items]}


def build_graph(model: BaseChatModel, store: BaseStore):
    """memorize -> recall -> respond, checkpointed per thread, with ``store`` as long-term memory."""

    def respond(state: State) -> dict:
        facts = "\n".join(f"- {fact}" for fact in state["recalled"]) or "- nothing yet"
        prompt = [SystemMessage(f"What you remember about this user:\n{facts}"), *state["messages"]]
        return {"messages": [model.invoke(prompt)]}

    builder = StateGraph(State, context_schema=UserContext)
    builder.add_node("memorize", memorize)
    builder.add_node("recall", recall)
    builder.add_node("respond", respond)
    builder.add_edge(START, "memorize")
    builder.add_edge("memorize", "recall")
    builder.add_edge("recall", "respond")
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=InMemorySaver(), store=store)


@dataclass
class Conversation:
    """What each thread ended with."""

    thread_1: dict
    thread_2: dict


def run(store: BaseStore, *, user_id: str = "alice", callbacks: list | None = None) -> Conversation:
    """Thread 1 stores a fact, thread 2 (a fresh conversation) recalls it through the store."""
    model = FakeListChatModel(responses=["I'll remember that your bike is a blue Brompton.",
                                         "You ride a blue Brompton."])
    graph = build_graph(model, store)
    context = UserContext(user_id=user_id)

    def config(thread: str) -> dict:
        return {"configurable": {"thread_id": thread}, "callbacks": callbacks or []}

    first = graph.invoke({"messages": [HumanMessage("Remember that my bike is a blue Brompton")]},
                         config("thread-1"), context=context)
    second = graph.invoke({"messages": [HumanMessage("Which bike do I ride?")]},
                          config("thread-2"), context=context)
    return Conversation(first, second)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="memosd agent endpoint (default: start a temporary daemon)")
    parser.add_argument("--prefix", default="lg-example", help="memosd namespace prefix of the store")
    args = parser.parse_args(argv)
    daemon = None
    if args.endpoint is None:
        from memosd.testing import DaemonProcess

        daemon = DaemonProcess().start()
    try:
        with MemosdStore(args.endpoint or daemon.endpoint, prefix=args.prefix) as store:
            talk = run(store)
            for name, state in (("thread 1", talk.thread_1), ("thread 2", talk.thread_2)):
                print(f"== {name}")
                for message in state["messages"]:
                    print(f"{message.type}: {message.content}")
                print(f"recalled: {state['recalled']}")
            print("store:", [(item.namespace, item.value) for item in store.search(("memories",))])
    finally:
        if daemon is not None:
            daemon.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
