"""Rich tables of a cross-validation run (the dict :func:`.crossval_run.run_tuning` returns)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .conversation_report import console_for_tables, conversation_table, recall_cell
from .locomo import CATEGORIES


def _categories(result: dict) -> list[str]:
    return sorted(result["default"]["per_category"], key=int)


def _short(label: str) -> str:
    """A point's label without the section names (``k1=0.5, page_weight=0.8``), to keep the fold table narrow."""
    return ", ".join(part.split(".", 1)[-1] for part in label.split(" "))


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def grid_table(result: dict) -> Table:
    """Every evaluated point on all conversations: R@k and each conversation's R@k, with the change from the default."""
    k = result["k"]
    key = f"recall@{k}"
    ids = result["conversations"]
    base = result["grid"][0][key]
    table = Table(title=f"grid ({result['mode']}): every point on all {len(ids)} conversations (in-sample, "
                        f"for reference only)")
    table.add_column("point")
    table.add_column(f"R@{k}", justify="right")
    table.add_column("vs default", justify="right")
    for cid in ids:
        table.add_column(cid, justify="right")
    table.add_column("s", justify="right")
    for row in result["grid"]:
        table.add_row(row["label"], recall_cell(row[key]), _signed(row[key] - base),
                      *(recall_cell(row["per_conversation"].get(cid)) for cid in ids), f"{row['seconds']:.0f}")
    return table


def folds_table(result: dict) -> Table:
    """Per fold: the held-out conversation, the setting chosen without it, held-in and held-out R@k (chosen and
    default), and on how many held-out questions the chosen setting beat or lost to the default."""
    k = result["k"]
    key = f"recall@{k}"
    cats = _categories(result)
    table = Table(title=f"leave-one-conversation-out folds (choice: best mean R@{k} over the held-in questions)")
    table.add_column("held out")
    table.add_column("chosen on held-in", min_width=24, max_width=40)
    # Short headers keep the table within 160 columns; the caption says what they are.
    for name in ("in R@k", "in dflt", "out R@k", "out dflt", "+/- qs"):
        table.add_column(name.replace("R@k", f"R@{k}"), justify="right")
    for cat in cats:
        table.add_column(f"out {cat}", justify="right")
    table.caption = (f"in / out: mean R@{k} over the held-in / held-out questions, of the chosen setting and of the "
                     f"default (dflt); +/- qs: held-out questions the chosen setting scored higher / lower on than "
                     f"the default; out N: held-out R@{k} on category N ("
                     + ", ".join(f"{cat} {CATEGORIES.get(int(cat), '?')}" for cat in cats) + ")")
    for fold in result["folds"]:
        out, base = fold["held_out_figures"], fold["default_held_out_figures"]
        paired = fold.get("vs_default_questions") or {}
        table.add_row(fold["held_out"], _short(fold["chosen"]), recall_cell(fold["held_in"]),
                      recall_cell(fold["default_held_in"]), recall_cell(out[key]), recall_cell(base[key]),
                      f"{paired.get('better', '-')} / {paired.get('worse', '-')}",
                      *(recall_cell(out["per_category"].get(cat, {}).get(key)) for cat in cats))
    return table


def headline_table(result: dict) -> Table:
    """Cross-validated R@k beside the default's and the in-sample best's, overall, per category and spread."""
    k = result["k"]
    key = f"recall@{k}"
    cats = _categories(result)
    best = result["in_sample_best"]
    table = Table(title=f"LoCoMo R@{k}: cross-validated (held-out folds pooled, question-weighted)")
    table.add_column("configuration")
    table.add_column(f"R@{k}", justify="right")
    for cat in cats:
        table.add_column(f"{cat} {CATEGORIES.get(int(cat), '?')}", justify="right")
    table.add_column("cats 1-4", justify="right")
    table.add_column("min conv", justify="right")
    table.add_column("max conv", justify="right")
    rows = [("cross-validated (settings chosen per fold)", result["cross_validated"])]
    if "cross_validated_grid_only" in result and any(fold.get("combined") for fold in result["folds"]):
        rows.append(("cross-validated, grid points only (no combinations)", result["cross_validated_grid_only"]))
    rows += [("default configuration", result["default"]),
            (f"in-sample best, optimistic: {_short(best['label'])}", best)]
    for name, fig in rows:
        ends = fig["spread"][key] or {}
        table.add_row(name, recall_cell(fig[key]),
                      *(recall_cell(fig["per_category"].get(cat, {}).get(key)) for cat in cats),
                      recall_cell(fig["categories_1_4"][key]),
                      f"{recall_cell(ends.get('min'))} {ends.get('min_conversation', '')}",
                      f"{recall_cell(ends.get('max'))} {ends.get('max_conversation', '')}")
    return table


def agreement_table(result: dict) -> Table:
    """Per swept parameter: each fold's best held-in value ("=" is the default) and whether the folds agree."""
    defaults = {p["key"]: p["default"] for p in result["params"]}
    folds = [fold["held_out"] for fold in result["folds"]]
    table = Table(title="best held-in value of each parameter, per fold (without the column's conversation)")
    table.add_column("parameter")
    table.add_column("default", justify="right")
    for name in folds:
        table.add_column(f"w/o {name}", justify="right")
    table.add_column("folds agree")
    for key, row in result["agreement"].items():
        picks = [row["picks"][name] for name in folds]
        table.add_row(key, defaults.get(key, "?"), *("=" if v is None else v for v in picks),
                      "yes" if row["agree"] else "no")
    return table


def print_crossval(result: dict, console: Console | None = None) -> None:
    """Every table of a cross-validation run, the headline last."""
    console = console or console_for_tables()
    k = result["k"]
    console.print(grid_table(result))
    default = result["default"]
    console.print(conversation_table(default["per_conversation"], default["spread"], [k],
                                     "default configuration, per conversation"))
    cv = result["cross_validated"]
    console.print(conversation_table(cv["per_conversation"], cv["spread"], [k],
                                     "cross-validated: each conversation scored with the setting chosen without it"))
    if result["agreement"]:
        console.print(agreement_table(result))
    console.print(folds_table(result))
    console.print(headline_table(result))
    console.print(f"{len(result['grid'])} points evaluated in {result['seconds']:.0f} s")
