"""How CLI commands print results: JSON for scripts, short text for people; and exit codes."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import msgspec

from memosd_client.protocol.errors import ErrorCode, MemosdError
from memosd_client.protocol.messages import Memory


class ExitCode:
    """Exit codes a script can rely on."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4
    INVALID = 5
    CONFLICT = 6
    UNHEALTHY = 7


_BY_ERROR = {
    ErrorCode.NOT_FOUND: ExitCode.NOT_FOUND,
    ErrorCode.TIMEOUT: ExitCode.UNREACHABLE,
    ErrorCode.CONNECTION: ExitCode.UNREACHABLE,
    ErrorCode.UNAVAILABLE: ExitCode.UNREACHABLE,
    ErrorCode.INVALID_ARGUMENT: ExitCode.INVALID,
    ErrorCode.INVALID_NAMESPACE: ExitCode.INVALID,
    ErrorCode.TOO_LARGE: ExitCode.INVALID,
    ErrorCode.CONFLICT: ExitCode.CONFLICT,
}


def exit_code_for(err: MemosdError) -> int:
    return _BY_ERROR.get(err.code, ExitCode.ERROR)


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    sys.stdout.flush()


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def memory_line(mem: Memory) -> str:
    flags = []
    if mem.superseded_by is not None:
        flags.append(f"superseded by {mem.superseded_by}")
    if mem.forgotten_at is not None:
        flags.append("forgotten")
    extra = f" ({', '.join(flags)})" if flags else ""
    session = f" session={mem.session}" if mem.session else ""
    return f"{mem.id}\t{fmt_time(mem.event_time or mem.created_at)}{session}{extra}\t{mem.text}"


def progress_printer():
    """A ``say(message)`` that prints progress to stderr with the seconds since it was made,
    keeping stdout clean for tables and JSON."""
    import time

    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()

    def say(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:7.1f}s[/dim] {message}", highlight=False)

    return say


def parse_time(value: str) -> float:
    """Accept epoch seconds or an ISO 8601 date/time (UTC when no zone is given)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use epoch seconds or ISO 8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()
