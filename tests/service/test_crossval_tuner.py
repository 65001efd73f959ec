"""Per-conversation figures of ``memosd eval locomo`` and the cross-validation tuner, end to end through
real daemons on the tiny LoCoMo-format file that ships with the package (figures are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

from memosd.bench.sample import tiny_locomo

ROOT = Path(__file__).resolve().parents[2]


def run(*args, timeout=240):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny-locomo.json"
    path.write_text(json.dumps(tiny_locomo()))
    return path


def test_eval_locomo_reports_each_conversation_and_the_spread(tmp_path):
    result = run("-m", "memosd", "eval", "locomo", str(tiny_file(tmp_path)), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = report["per_conversation"]
    assert list(rows) == ["tiny-1", "tiny-2"]
    assert rows["tiny-1"]["questions"] == 5 and rows["tiny-2"]["questions"] == 1
    assert set(rows["tiny-1"]["per_category"]) == {"1", "2", "3", "4", "5"}
    ends = report["spread"]["recall@10"]
    assert ends["min"] <= report["recall@10"] <= ends["max"]
    assert {ends["min_conversation"], ends["max_conversation"]} <= {"tiny-1", "tiny-2"}


def test_tuner_cross_validates_a_two_point_grid_through_daemons(tmp_path):
    result = run("bench/crossval.py", str(tiny_file(tmp_path)), "--param", "retrieval.b=0.2,0.6", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["label"] for row in report["grid"]] == ["default", "retrieval.b=0.6"]
    assert report["conversations"] == ["tiny-1", "tiny-2"]
    folds = report["folds"]
    assert [fold["held_out"] for fold in folds] == ["tiny-1", "tiny-2"]
    for fold in folds:
        assert fold["chosen"] in ("default", "retrieval.b=0.6")
        assert 0.0 <= fold["held_in"] <= 1.0
    # Every question is scored once, in the fold that held its conversation out.
    assert report["cross_validated"]["questions"] == 6
    assert set(report["cross_validated"]["per_conversation"]) == {"tiny-1", "tiny-2"}
    assert report["default"]["questions"] == 6


def test_tuner_refuses_an_unknown_setting(tmp_path):
    result = run("bench/crossval.py", str(tiny_file(tmp_path)), "--param", "tiers.no_such_key=1")
    assert result.returncode == 2 and "no_such_key" in result.stderr
