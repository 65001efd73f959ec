"""Prove ``memosd mcp`` from a shell: spawn it over stdio with the MCP SDK's own client, list its
tools, ``remember`` a memory and ``recall`` it.

    python examples/mcp_roundtrip.py                      # memosd mcp --namespace demo
    python examples/mcp_roundtrip.py --namespace notes --endpoint ipc:///run/memosd/memosd.sock

Arguments are passed to ``memosd mcp`` (default ``--namespace demo``). Without ``--endpoint``,
``memosd mcp`` starts a daemon on its defaults when none answers. ``MEMOSD_*`` variables of this
environment are passed on (the SDK gives a server only a minimal environment).
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client


async def main(mcp_args: list[str]) -> None:
    env = {name: value for name, value in os.environ.items() if name.startswith("MEMOSD_")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "memosd", "mcp", *mcp_args], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        info = await session.initialize()
        print(f"server: {info.server_info.name} {info.server_info.version}")
        tools = (await session.list_tools()).tools
        print("tools: " + ", ".join(tool.name for tool in tools))

        stored = await session.call_tool("remember", {"text": "Alice moved to Lisbon in May 2023",
                                                      "session": "s1", "tags": ["profile"]})
        print(f"remember -> {stored.content[0].text}   structured: {stored.structured_content}")
        found = await session.call_tool("recall", {"query": "where does Alice live?", "k": 3})
        print(f"recall ->\n{found.content[0].text}")
        top = found.structured_content["hits"][0]
        print(f"top hit: id={top['memory']['id']} score={top['score']:.3f} matched={top['matched']}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:] or ["--namespace", "demo"])
