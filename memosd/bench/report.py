"""Rich tables for ``memosd bench`` and ``memosd eval locomo`` results."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .locomo import CATEGORIES


def _us(value) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} us"


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _anon(row: dict) -> str:
    """Anonymous RSS, with the resident page vectors (what the budget governs) in it."""
    vectors = row.get("page_vectors")
    text = _bytes(row.get("rss_anon_bytes"))
    return text if not vectors else f"{text} (vectors {_bytes(vectors['resident_bytes'])})"


def _bytes(value) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)


def _rate(value) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # piped into a file or a log: do not wrap at 80 columns
    return console


def print_bench(result: dict, console: Console | None = None) -> None:
    """Recall, store, write and target tables for one bench run."""
    console = console or _console()
    machine = result["machine"]
    console.print(f"[bold]memosd bench[/bold]: {machine['cpus']} CPU(s) {machine['cpu']}, "
                  f"Python {machine['python']}, pyzmq {machine['pyzmq']} / libzmq {machine['libzmq']}; "
                  f"workload {result['workload']}; {result['seconds']} s")

    if result["recall"]:
        table = Table(title=f"recall k={result['options']['k']}, sequential, one namespace "
                            f"(floor = bare pyzmq DEALER->ROUTER echo, same run)")
        for col in ("memories", "path", "p50", "p99", "mean", "engine p50", "p50 / floor", "p99 / floor"):
            table.add_column(col, justify="right")
        for row in result["recall"]:
            first = True
            for name, s in row["paths"].items():
                table.add_row(f"{row['memories']:,}" if first else "", name, _us(s["p50_us"]), _us(s["p99_us"]),
                              _us(s["mean_us"]), _us(s.get("engine_p50_us")), _x(s.get("vs_floor_p50")),
                              _x(s.get("vs_floor_p99")))
                first = False
            table.add_section()
        console.print(table)

        crash_writes = result["options"].get("crash_writes", 1000)
        budget = result["options"].get("budget_bytes")
        budget = "the daemon's default" if budget is None else f"{budget:,} B"
        table = Table(title=f"store (after filling in durable batches of 1000; RSS after the recalls, page-vector "
                            f"budget {budget}; restart: "
                            "stop, start on the same store, first recall answered, then recall p50 on the "
                            "indexes opened from the snapshot and its ratio to before the restart; after kill "
                            f"-9: a snapshot while serving, {crash_writes:,} more memories, kill -9, start, first "
                            "recall (change-log entries replayed); rebuild: a start without any index snapshot)")
        for col in ("memories", "fill rate", "on disk", "bytes/memory", "LMDB used", "daemon RSS",
                    "anon RSS", "RAM/memory", "restart", "p50 after", "after kill -9", "rebuild",
                    "daemon CPU/recall"):
            table.add_column(col, justify="right")
        for row in result["recall"]:
            cpu = row.get("daemon_cpu_us_per_recall")
            per_memory = row.get("rss_anon_bytes_per_memory")
            restart, rebuild, after = row.get("restart_s"), row.get("rebuild_s"), row.get("after_restart")
            table.add_row(f"{row['memories']:,}", _rate(row["fill"]["per_s"]), _bytes(row["store"]["disk_bytes"]),
                          "-" if row["store"]["disk_bytes_per_memory"] is None
                          else f"{row['store']['disk_bytes_per_memory']:,.0f}",
                          _bytes(row["store"]["used_bytes"]), _bytes(row["rss_bytes"]),
                          _anon(row), "-" if per_memory is None else f"{per_memory:,.0f} B",
                          "-" if restart is None else f"{restart:.2f} s",
                          "-" if after is None else f"{_us(after['p50_us'])} ({_x(after.get('vs_before_p50'))})",
                          _crash(row.get("crash")), "-" if rebuild is None else f"{rebuild:.2f} s", _us(cpu))
        console.print(table)

    if result["writes"]:
        transport = next(iter(result["writes"].values()))["transport"]
        where = "fresh store" if result["options"]["endpoint"] is None else result["options"]["endpoint"]
        table = Table(title=f"remember ({where}, {transport}; floor = the same records written by a bare LMDB "
                            f"writer with the same fsync policy, as many per commit as the test puts in a request, "
                            f"same run)")
        for col in ("mode", "operation", "p50", "p99", "memories/s", "floor/s", "floor p50", "memosd / floor"):
            table.add_column(col, justify="right")
        for mode, w in result["writes"].items():
            label = {"durable": "durable (fsync)", "no_fsync": "--no-fsync"}.get(mode, mode)
            rows = [("single, sequential", w["single"])]
            rows += [(f"batch of {b['batch']}, sequential", b) for b in w["batched"]]
            if w.get("concurrent"):
                rows.append((f"single, {w['concurrent']['concurrency']} in flight", w["concurrent"]))
            for i, (operation, s) in enumerate(rows):
                floor = s.get("floor") or {}
                # Throughput as a ratio: memosd's rate is this share of the store's.
                table.add_row(label if i == 0 else "", operation, _us(s["p50_us"]), _us(s["p99_us"]),
                              _rate(s["per_s"]), _rate(floor.get("per_s")), _us(floor.get("p50_us")),
                              "-" if s.get("vs_floor_per_s") is None else f"{s['vs_floor_per_s']:.2f}")
            table.add_section()
        console.print(table)

    targets = {k: v for k, v in result["targets"].items() if v is not None}
    if targets:
        table = Table(title="targets")
        for col in ("target", "measured", "met"):
            table.add_column(col)
        labels = {
            # Exact microseconds: "2.00 ms" next to "NO" would read as a contradiction.
            "recall_ipc_100k_p50_le_2ms": ("recall p50 <= 2 ms, ipc, 100k", lambda v: f"{v['measured_us']:,.0f} us"),
            "recall_ipc_100k_p99_le_10ms": ("recall p99 <= 10 ms, ipc, 100k", lambda v: f"{v['measured_us']:,.0f} us"),
            "durable_batch_1000_ge_50000_per_s": ("durable batches of 1000 >= 50,000/s",
                                                  lambda v: _rate(v["measured_per_s"])),
            "durable_16_in_flight_ge_5000_per_s": ("durable singles, 16 in flight >= 5,000/s",
                                                   lambda v: _rate(v["measured_per_s"])),
            "durable_single_p50_le_1_5ms": ("durable single remember p50 <= 1.5 ms",
                                            lambda v: f"{v['measured_us']:,.0f} us"),
        }
        for key, value in targets.items():
            label, fmt = labels[key]
            table.add_row(label, fmt(value), "[green]yes[/green]" if value["met"] else "[red]NO[/red]")
        console.print(table)


def print_peer_bench(result: dict, console: Console | None = None) -> None:
    """One row per store: query latency, insert rate, recall@k against exact search."""
    console = console or _console()
    machine, v = result["machine"], result["vectors"]
    console.print(f"[bold]memosd bench --peers[/bold]: {machine['cpus']} CPU(s) {machine['cpu']}, "
                  f"Python {machine['python']}; {v['count']:,} x {v['dim']}-d vectors ({v['shape']}), "
                  f"{v['queries']:,} queries; {result['seconds']} s")
    k = result["k"]
    table = Table(title=f"top-{k} queries, one at a time, stores alternating every 100 queries "
                        f"(memosd over ipc; the others in this process)")
    for col in ("store", "p50", "p99", "p50 / memosd", "insert rows/s (until searchable)", f"recall@{k} vs exact",
                "configuration"):
        table.add_column(col, justify="left" if col in ("store", "configuration") else "right")
    for row in result["peers"]:
        insert = row["insert"]
        rate = _rate(insert["per_s"]) if row["store"] != "numpy" else "-"
        table.add_row(row["store"], _us(row["p50_us"]), _us(row["p99_us"]), _x(row.get("vs_memosd_p50")), rate,
                      f"{row['recall_at_k']:.3f}", escape(row["config"]))
    console.print(table)
    for memosd in (row for row in result["peers"] if row["store"].startswith("memosd")):
        console.print(f"{memosd['store']}: engine p50 {_us(memosd.get('engine_p50_us'))} (the rest is socket, framing and "
                      f"client); writes acknowledged at {_rate(memosd['insert']['acked_per_s'])}; daemon RSS "
                      f"{_bytes(memosd.get('rss_bytes'))}, anonymous {_bytes(memosd.get('rss_anon_bytes'))}")
    for name, reason in result["skipped"].items():
        console.print(f"[yellow]skipped {name}[/yellow]: {escape(reason)}")


def _r(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_locomo(result: dict, console: Console | None = None) -> None:
    """Recall@k overall, per category and for categories 1-4, plus ingestion and latency."""
    console = console or _console()
    ks = result["ks"]
    table = Table(title="LoCoMo evidence recall@k",
                  caption=f"{result['questions']} questions with evidence, {result['conversations']} conversations, "
                          f"{result['turns']} turns")
    table.add_column("subset")
    table.add_column("questions", justify="right")
    for k in ks:
        table.add_column(f"R@{k}", justify="right")
    table.add_row("overall", str(result["questions"]), *(_r(result[f"recall@{k}"]) for k in ks))
    table.add_section()
    for cat, row in result["per_category"].items():
        name = CATEGORIES.get(int(cat), "?")
        table.add_row(f"{cat} {name}", str(row["questions"]), *(_r(row[f"recall@{k}"]) for k in ks))
    table.add_section()
    c14 = result["categories_1_4"]
    table.add_row("categories 1-4 (per question)", str(c14["questions"]), *(_r(c14[f"recall@{k}"]) for k in ks))
    table.add_row("categories 1-4 (mean of 4)", "", *(_r(c14[f"macro_recall@{k}"]) for k in ks))
    console.print(table)
    ing, lat = result["ingest"], result["recall_latency"]
    console.print(f"ingest: {ing['turns']:,} turns in {ing['seconds']:.2f} s = {ing['per_s']:,.0f} turns/s "
                  f"(batches of {ing['batch']}, durable unless the daemon runs --no-fsync); "
                  f"recall k={max(ks)}: p50 {_us(lat['p50_us'])}, p99 {_us(lat['p99_us'])}, "
                  f"engine p50 {_us(lat.get('engine_p50_us'))}")
    tiers = result.get("daemon")
    if tiers:
        budget = tiers["budget_bytes"]
        console.print(f"tiers: {tiers['pages']:,} pages, policy {tiers['policy']}, page vectors resident "
                      f"{tiers['resident_bytes']:,} B (budget {budget:,} B); while asking: {tiers['faults']:,} "
                      f"page faults in {tiers['fault_queries']:,} of {tiers['queries']:,} queries, "
                      f"{tiers['evictions']:,} evictions")


def print_tier_bench(result: dict, console: Console | None = None) -> None:
    """Store vs resident sizes, and recall latency idle vs busy scheduler, per store size."""
    console = console or _console()
    sizes = Table("memories", "pages", "store on disk", "page vectors resident", "fixed (lexical, coarse, ...)",
                  "daemon RSS", title=f"memory tiers, budget {result['budget_bytes']:,} B")
    for row in result["sizes"]:
        sizes.add_row(f"{row['memories']:,}", f"{row['pages']:,}", f"{row['store_bytes']:,} B",
                      f"{row['resident_bytes']:,} B ({row['resident_pages']:,} pages)", f"{row['fixed_bytes']:,} B",
                      f"{row['rss_bytes']:,} B")
    console.print(sizes)
    latency = Table("memories", "scheduler", "recall p50", "p99", "engine p50", "queries faulting", "faults/query",
                    "backlog", title=f"recall k={result['k']}, {result['queries']:,} queries ({result['data']})")
    for row in result["sizes"]:
        for phase in ("idle", "busy"):
            lat = row[phase]
            backlog = f"{lat.get('backlog_at_start', 0):,} -> {lat.get('backlog_at_end', 0):,}" if phase == "busy" else "0"
            latency.add_row(f"{row['memories']:,}", phase, _us(lat["p50_us"]), _us(lat["p99_us"]),
                            _us(lat["engine_p50_us"]), f"{(lat['fault_rate'] or 0):.1%}",
                            f"{lat['faults_per_query']}", backlog)
        latency.add_row("", "busy / idle", f"{row['busy_vs_idle_p50']}x", f"{row['busy_vs_idle_p99']}x", "", "", "", "")
    console.print(latency)
    settling = Table("memories", "fill", "settled after", "settling rate", "scheduler steps (busy phase)",
                     "over the step limit", "longest step", title="settling (first write until no backlog) and the "
                     "scheduler's steps on the event loop")
    for row in result["sizes"]:
        steps = row["busy"].get("scheduler_steps") or {}
        settling.add_row(f"{row['memories']:,}", _rate(row["fill_per_s"]), f"{row['settle_s']} s",
                         _rate(row.get("settle_per_s")), f"{steps.get('steps', 0):,} ({steps.get('busy_s', 0)} s)",
                         f"{steps.get('over_step', 0):,}",
                         "-" if row.get("longest_step_s") is None else _us(row["longest_step_s"] * 1e6))
    console.print(settling)


def print_slb_bench(result: dict, console: Console | None = None) -> None:
    """Per workload: latency with the compared feature off and on, agreement, and the feature's own figures."""
    console = console or _console()
    settings = result["settings"]
    budget = f"{settings['budget_bytes']:,} B budget" if settings.get("budget_bytes") else "no budget"
    if settings.get("compare", "buffer") == "buffer":
        title = f"semantic lookaside buffer off/on (threshold {settings['threshold']}"
        extra = ("hit rate", lambda row: f"{row['hit_rate']:.1%}")
    else:
        title = "prefetching off/on (buffer off in both"
        extra = ("faults per recall off/on, prefetch usefulness",
                 lambda row: f"{row['off_faults_per_recall']:.2f} / {row['on_faults_per_recall']:.2f}, "
                             + ("-" if row["prefetch_usefulness"] is None else f"{row['prefetch_usefulness']:.1%}"))
    table = Table("workload", "queries", extra[0], "p50 off", "p50 on", "on/off", "p99 off", "p99 on", "on/off",
                  "top-10 agreement",
                  title=f"{title}, {budget}, think {settings.get('think_ms', 0):g} ms; {result['file']})")
    for name, row in result["workloads"].items():
        table.add_row(name, f"{row['queries']:,}", extra[1](row), _us(row["off_p50_us"]),
                      _us(row["on_p50_us"]), f"{row['p50_ratio']}x", _us(row["off_p99_us"]), _us(row["on_p99_us"]),
                      f"{row['p99_ratio']}x", f"{row['agreement']}")
    console.print(table)


def print_query_similarity(result: dict, console: Console | None = None) -> None:
    """Nearest-earlier-query cosine per workload: the ceiling on any query-keyed buffer's hit rate."""
    from .slb import SIMILARITY_LEVELS

    console = console or _console()
    table = Table("workload", "queries", "p50", "p90", *(f">= {level}" for level in SIMILARITY_LEVELS),
                  title=f"cosine to the nearest earlier query of the namespace ({result['encoder']}; {result['file']})")
    for name, row in result["workloads"].items():
        table.add_row(name, f"{row['queries']:,}", f"{row['p50']:.3f}", f"{row['p90']:.3f}",
                      *(f"{row[f'at_least_{level}']:.1%}" for level in SIMILARITY_LEVELS))
    console.print(table)


def _crash(timing: dict | None) -> str:
    if timing is None:
        return "-"
    how = "rebuilt" if timing.get("rebuilt") else f"{timing.get('replayed_entries', 0):,} entries"
    before, after = timing.get("memories_before"), timing.get("memories_after")
    if before is not None and after != before:
        how += f"; {before - (after or 0):,} MEMORIES MISSING"
    return f"{timing['first_recall_s']:.2f} s ({how})"
