"""``memosd tiers`` and ``memosd show page ID``: where memories live, and one page in full."""

from __future__ import annotations

import argparse

from memosd_client import AdminClient
from memosd_client.protocol import messages as m

from ..cli.connection import agent_client
from ..cli.output import ExitCode, fmt_time, print_json


def cmd_tiers(args) -> int:
    """Per namespace: turns per tier, pages, resident bytes, heat percentiles, faults, evictions, promotions."""
    with AdminClient(args.admin_endpoint, timeout=args.timeout) as admin:
        result: m.TiersResult = admin.tiers(args.namespace)
    if args.json:
        print_json(result)
        return ExitCode.OK
    from rich.console import Console
    from rich.table import Table

    table = Table("namespace", "turns stm/mtm/ltm", "pages (open, consolidated)", "resident pages, bytes",
                  "heat p50/p90/p99", "faults, evictions", "promoted, demoted")
    for ns in result.namespaces:
        table.add_row(ns.name, f"{ns.stm:,} / {ns.mtm:,} / {ns.ltm:,}",
                      f"{ns.pages:,} ({ns.open_pages:,}, {ns.consolidated_pages:,}); {ns.facts:,} facts",
                      f"{ns.resident_pages:,}, {ns.resident_bytes:,} B (+{ns.fixed_bytes:,} B fixed)",
                      f"{ns.heat_p50:.3g} / {ns.heat_p90:.3g} / {ns.heat_p99:.3g}",
                      f"{ns.faults:,} (recalls faulting {ns.fault_queries:,} of {ns.queries:,}), {ns.evictions:,}",
                      f"{ns.promotions:,}, {ns.demotions:,}")
    console = Console()
    console.print(table)
    budget = f"{result.budget_bytes:,} B" if result.budget_bytes else "unlimited"
    console.print(f"page vectors resident: {result.resident_bytes:,} B of a {budget} budget; process RSS "
                  f"{result.rss_bytes:,} B; scheduler backlog {result.backlog:,}; policy {result.policy}")
    if result.slb is not None:
        console.print(slb_line(result.slb))
    return ExitCode.OK


def slb_line(slb: m.SlbInfo) -> str:
    """One line on the lookaside buffer and prefetching (docs/slb.md)."""
    if slb.enabled:
        agreement = "not verified yet" if slb.agreement is None else f"agreement {slb.agreement:.3f}"
        buffer = (f"lookaside buffer: {slb.hit_rate:.1%} of {slb.lookups:,} recalls hit ({slb.hit_mean_us:,.0f} us "
                  f"vs {slb.miss_mean_us:,.0f} us missed), {agreement}, {slb.entries:,} entries")
    else:
        buffer = "lookaside buffer: off"
    if slb.prefetch:
        useful = "-" if slb.prefetch_usefulness is None else f"{slb.prefetch_usefulness:.1%}"
        prefetch = (f"prefetch: {slb.prefetched:,} pages warmed, {slb.prefetch_used:,} used, "
                    f"{slb.prefetch_wasted:,} evicted unused (usefulness {useful})")
    else:
        prefetch = "prefetch: off"
    return f"{buffer}; {prefetch}"


def _fetch(args, ask):
    """``ask(client)`` with the command's connection settings; under --json, print the answer and
    return None (the command is done), else return it for a text rendering."""
    with agent_client(args) as client:
        result = ask(client)
    if args.json:
        print_json(result)
        return None
    return result


def cmd_show_page(args) -> int:
    """One page: members, heat, residency, summary, keywords, entities and facts with their sources."""
    page: m.PageResult | None = _fetch(args, lambda client: client.page(args.id, memory=args.memory))
    if page is None:
        return ExitCode.OK
    state = ("closed" if page.closed else "open") + (", consolidated by " + page.policy if page.consolidated else "")
    print(f"page {page.id} of session {page.session!r}: {len(page.members)} turns, tier {page.tier}, {state}")
    print(f"  time     {fmt_time(page.first_time)} .. {fmt_time(page.last_time)}")
    print(f"  heat     {page.heat:g} (hits {page.hits:.3g}, last touched {fmt_time(page.touched_at)}); "
          f"{'resident' if page.resident else 'not resident'}{' (prefetched, not used yet)' if page.prefetched else ''}")
    print(f"  members  {', '.join(map(str, page.members))}")
    if page.summary:
        print(f"  summary  {page.summary}")
    if page.keywords:
        print(f"  keywords {', '.join(page.keywords)}")
    if page.entities:
        print("  entities " + "; ".join(f"{e.name} ({', '.join(map(str, e.sources))})" for e in page.entities))
    for fact in page.facts:
        print(_fact_line(fact))
    return ExitCode.OK


def cmd_show_entity(args) -> int:
    """An entity's long-term profile: the pages and turns that name it, and the facts about it."""
    profile: m.EntityResult | None = _fetch(args, lambda client: client.entity(args.name, limit=args.limit))
    if profile is None:
        return ExitCode.OK
    print(f"{profile.name}: named in {len(profile.mentions)} turns of {len(profile.pages)} pages, "
          f"{fmt_time(profile.first_time)} .. {fmt_time(profile.last_time)}")
    print(f"  pages    {', '.join(map(str, profile.pages))}")
    for fact in profile.facts:
        print(_fact_line(fact))
    return ExitCode.OK


def _fact_line(fact: m.FactInfo) -> str:
    when = f" [{fact.meta['date']}]" if fact.meta.get("date") else ""
    return f"  fact     {fact.text}{when} <- {', '.join(map(str, fact.sources))}"


def add_tiers_commands(sub, common: argparse.ArgumentParser) -> None:
    """Add ``memosd tiers`` and ``memosd show page`` to the ``memosd`` subparsers."""
    p = sub.add_parser("tiers", parents=[common], help="memory tiers per namespace (admin endpoint)",
                       description=cmd_tiers.__doc__)
    p.set_defaults(handler=cmd_tiers)
    show = sub.add_parser("show", help="show one object of a namespace in full")
    what = show.add_subparsers(dest="what", required=True, metavar="OBJECT")
    p = what.add_parser("page", parents=[common], help="one page of the namespace's tiers",
                        description=cmd_show_page.__doc__)
    p.add_argument("id", type=int, nargs="?", help="page id")
    p.add_argument("--memory", type=int, help="show the page holding this memory instead")
    p.set_defaults(handler=cmd_show_page)
    p = what.add_parser("entity", parents=[common], help="an entity's profile in long-term memory",
                        description=cmd_show_entity.__doc__)
    p.add_argument("name")
    p.add_argument("--limit", type=int, default=20, help="most recent pages to include (default 20)")
    p.set_defaults(handler=cmd_show_entity)
