"""Rich tables of LoCoMo figures per conversation: one row per sample_id, then the spread.

Shared by ``memosd eval locomo`` and the cross-validation tuner, so a
conversation's figures read the same in both.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .locomo import CATEGORIES


def recall_cell(value: float | None) -> str:
    """A recall figure as printed in the tables (3 decimals; "-" when missing)."""
    return "-" if value is None else f"{value:.3f}"


def console_for_tables() -> Console:
    """A console that does not wrap wide tables at 80 columns when output goes to a file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def conversation_table(per_conversation: dict[str, dict], spread: dict, ks: list[int], title: str) -> Table:
    """Per conversation: questions, recall@k for every k, and recall@max(k) per category; then min and max rows."""
    top = max(ks)
    categories = sorted({cat for row in per_conversation.values() for cat in row["per_category"]}, key=int)
    table = Table(title=title)
    table.add_column("conversation")
    table.add_column("questions", justify="right")
    for k in ks:
        table.add_column(f"R@{k}", justify="right")
    for cat in categories:
        table.add_column(f"R@{top} {cat} {CATEGORIES.get(int(cat), '?')}", justify="right")
    for name, row in per_conversation.items():
        cells = [recall_cell(row[f"recall@{k}"]) for k in ks]
        cells += [recall_cell(row["per_category"].get(cat, {}).get(f"recall@{top}")) for cat in categories]
        table.add_row(name, str(row["questions"]), *cells)
    table.add_section()
    for end in ("min", "max"):
        cells = [recall_cell((spread.get(f"recall@{k}") or {}).get(end)) for k in ks]
        cells += [recall_cell((spread["per_category"].get(cat, {}).get(f"recall@{top}") or {}).get(end))
                  for cat in categories]
        table.add_row(f"{end} over conversations", "", *cells)
    return table


def print_per_conversation(result: dict, console: Console | None = None) -> None:
    """The per-conversation table of a ``memosd eval locomo`` result (nothing for a one-conversation file)."""
    if len(result.get("per_conversation") or {}) < 2:
        return
    console = console or console_for_tables()
    console.print(conversation_table(result["per_conversation"], result["spread"], result["ks"],
                                     "LoCoMo evidence recall@k per conversation"))
