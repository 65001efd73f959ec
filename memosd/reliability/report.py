"""Rich tables for ``memosd reliability`` results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .result import SuiteResult

HEADLINE = {"crash": "lost", "load": "ops/s", "fuzz": "cases", "fairness": "p99 ratio",
            "soak": "anon RSS growth, 2nd half (MiB)"}
"""The figure shown for each suite in the summary table."""
LONG_TABLES = {"RSS samples", "failing frames"}
"""Row sets kept for --json only (one row per second; whole frames)."""


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # piped into a file or a log: do not wrap at 80 columns
    return console


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return " / ".join(_fmt(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def _verdict(result: SuiteResult) -> str:
    return "[green]PASS[/green]" if result.passed else "[bold red]FAIL[/bold red]"


def print_suite(result: SuiteResult, console: Console) -> None:
    """One suite: its figures, its extra tables, and why it failed if it did."""
    console.print(f"[bold]reliability {result.suite}[/bold]: {_verdict(result)} in {result.seconds:.1f} s; "
                  f"bar: {result.bar}")
    table = Table(show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in result.figures.items():
        table.add_row(name, _fmt(value))
    console.print(table)
    for title, rows in result.tables.items():
        if title in LONG_TABLES or not rows:
            continue
        sub = Table(title=title, title_justify="left")
        for column in rows[0]:
            sub.add_column(column, justify="left" if column in ("op", "errors") else "right")
        for row in rows:
            sub.add_row(*(_fmt(v) for v in row.values()))
        console.print(sub)
    if result.failures:
        console.print(f"[red]{result.failure_count} failure(s); the first {len(result.failures)} distinct:[/red]")
        for why in result.failures:
            console.print("  - " + why, style="red", highlight=False, markup=False)
    console.print()


def print_results(results: list[SuiteResult], settings_line: str, console: Console | None = None) -> None:
    """Every suite, then a summary when there are several."""
    console = console or _console()
    console.print(f"[bold]memosd reliability[/bold]: {settings_line}")
    for result in results:
        print_suite(result, console)
    if len(results) > 1:
        table = Table(title="summary", title_justify="left")
        for column in ("suite", "result", "headline", "seconds", "bar"):
            table.add_column(column)
        for result in results:
            key = HEADLINE.get(result.suite)
            headline = f"{key}: {_fmt(result.figures.get(key))}" if key else "-"
            table.add_row(result.suite, _verdict(result), headline, f"{result.seconds:.1f}", result.bar)
        console.print(table)
