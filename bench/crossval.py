"""Leave-one-conversation-out cross-validation of the daemon's retrieval settings on a LoCoMo file.

    python bench/crossval.py ../shared/data/locomo/locomo-dev.json              # default neighbourhood sweep
    python bench/crossval.py FILE --param tiers.page_weight=0.2,0.6 --param retrieval.k1=1.2
    python bench/crossval.py FILE --param tiers.page_weight=0.2,0.6 --param tiers.neighbor_weight=0,0.3 --joint
    python bench/crossval.py FILE --json > cv.json
    python bench/crossval.py --show cv.json                                    # the tables of a saved run

Every grid point is evaluated once, through its own temporary daemon (the
settings reach it as MEMOSD_<SECTION>_<KEY>), keeping each question's recall.
Then for each conversation: the point with the best mean R@k over the other
conversations' questions is chosen, and scored on the one left out. The
headline pools those held-out scores. The work is in memosd/bench/
(grid.py, crossval.py, crossval_run.py, crossval_report.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memosd.bench.crossval_report import print_crossval  # noqa: E402
from memosd.bench.crossval_run import TuneOptions, check_environment, run_tuning  # noqa: E402
from memosd.bench.grid import DEFAULT_NEIGHBOURHOOD, parse_param  # noqa: E402
from memosd.bench.locomo import load_conversations  # noqa: E402
from memosd.cli.output import progress_printer  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?", help="LoCoMo JSON file (two conversations or more)")
    parser.add_argument("--param", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                        help="a setting and the values to try; repeatable (default: a few values around each "
                             "default of " + ", ".join(p.split("=")[0] for p in DEFAULT_NEIGHBOURHOOD) + ")")
    parser.add_argument("--joint", action="store_true",
                        help="every combination of the values (default: one parameter at a time)")
    parser.add_argument("--no-combine", action="store_true",
                        help="after a sweep, do not let each fold try its best values of all parameters together")
    parser.add_argument("--k", type=int, default=10, help="choose and report on recall@k (default 10)")
    parser.add_argument("--jobs", type=int, default=1, help="daemons evaluated at once (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--show", type=Path, metavar="RUN.json", help="print the tables of a saved --json run")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.show is not None:
        print_crossval(json.loads(args.show.read_text()))
        return 0
    if args.file is None:
        parser.error("a LoCoMo file is needed (or --show RUN.json)")
    try:
        specs = [parse_param(text) for text in (args.param or DEFAULT_NEIGHBOURHOOD)]
        check_environment(specs)
        conversations = [c for c in load_conversations(args.file) if any(q.evidence for q in c.questions)]
        if len(conversations) < 2:
            raise ValueError(f"{args.file}: cross-validation needs two conversations with questions or more")
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = TuneOptions(k=args.k, joint=args.joint, combine=not args.no_combine, jobs=args.jobs)
    result = run_tuning(conversations, specs, options, say=progress_printer())
    result["file"] = str(args.file)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_crossval(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
