"""The ``memosd`` command line against a running daemon: output, JSON and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from memosd.cli.output import ExitCode
from memosd.testing import DaemonProcess

from _support import token

# The CLI reads its default namespace and endpoints from the environment; tests pass them explicitly.
_ENV = {k: v for k, v in os.environ.items() if not k.startswith("MEMOSD_")}


def _command(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "memosd", *args]


def run_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_command(args), capture_output=True, text=True, input=input, env=_ENV, timeout=120)


def run_together(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Run independent CLI invocations at the same time (each one is a whole Python start-up)."""
    procs = [subprocess.Popen(_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ENV)
             for args in commands]
    results = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


@pytest.fixture
def cli(daemon, ns):
    """Builds and runs memosd subcommands against the shared daemon in this test's namespace."""

    class Cli:
        @staticmethod
        def args(command: str, *args: str, namespace: str | None = ns) -> tuple[str, ...]:
            opts = ["--endpoint", daemon.endpoint, "--admin-endpoint", daemon.admin_endpoint]
            if namespace is not None:
                opts += ["-n", namespace]
            return (command, *args, *opts)

        def __call__(self, command: str, *args: str, namespace: str | None = ns, input: str | None = None):
            return run_cli(*self.args(command, *args, namespace=namespace), input=input)

        def together(self, *calls: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
            """Run several ``(command, *args)`` calls at once in this test's namespace."""
            return run_together(*(self.args(*call) for call in calls))

    return Cli()


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == ExitCode.OK, result.stderr
    return json.loads(result.stdout)


def test_remember_get_recall_list(cli):
    t = token()
    created = ok_json(cli("remember", f"the boiler is serviced every march {t}", "--tag", "house", "--tag", "yearly",
                          "--session", "s1", "--source", "notes", "--meta", "who=alice",
                          "--event-time", "2024-03-01T10:00:00", "--json"))
    memory_id = created["id"]
    from_stdin = cli("remember", "-", input=f"read from standard input {t}\n")
    assert from_stdin.returncode == 0, from_stdin.stderr
    second_id = int(from_stdin.stdout.strip())

    got, plain, hits, tagged, page = cli.together(
        ("get", str(memory_id), "--json"), ("get", str(memory_id)), ("recall", t, "-k", "5", "--json"),
        ("recall", t, "--tag", "house", "--json"), ("list", "--limit", "1", "--json"))
    mem = ok_json(got)
    assert mem["text"] == f"the boiler is serviced every march {t}"
    assert mem["tags"] == ["house", "yearly"] and mem["meta"] == {"who": "alice"}
    assert (mem["session"], mem["source"]) == ("s1", "notes")
    assert mem["event_time"] == 1709287200.0  # ISO time without a zone is UTC
    assert plain.returncode == 0 and t in plain.stdout

    hits = ok_json(hits)
    assert {hit["memory"]["id"] for hit in hits} == {memory_id, second_id}
    assert [hit["rank"] for hit in hits] == [1, 2]
    assert [hit["memory"]["id"] for hit in ok_json(tagged)] == [memory_id]

    page = ok_json(page)
    assert [m["id"] for m in page["memories"]] == [memory_id] and page["next_cursor"] == second_id


def test_update_history_forget(cli):
    memory_id = ok_json(cli("remember", "the office is on floor two", "--json"))["id"]
    updated = cli("update", str(memory_id), "the office is on floor five", "--reason", "moved")
    assert updated.returncode == 0, updated.stderr
    new_id = int(updated.stdout.strip())

    history, conflict, forgot, missing = cli.together(
        ("history", str(memory_id), "--json"), ("update", str(memory_id), "an edit of a stale version"),
        ("forget", str(new_id)), ("forget", str(new_id + 100)))
    versions = ok_json(history)
    assert [v["id"] for v in versions] == [memory_id, new_id]
    assert versions[1]["text"] == "the office is on floor five" and versions[1]["meta"]["update_reason"] == "moved"
    assert conflict.returncode == ExitCode.CONFLICT, conflict.stderr
    assert forgot.returncode == 0, forgot.stderr
    assert missing.returncode == ExitCode.NOT_FOUND

    current, everything = cli.together(("list", "--json"),
                                       ("list", "--include-forgotten", "--include-superseded", "--json"))
    assert ok_json(current)["memories"] == []
    assert [m["id"] for m in ok_json(everything)["memories"]] == [memory_id, new_id]


def test_error_exit_codes(cli, daemon, ns):
    with daemon.client(ns) as client:
        memory_id = client.remember("present")
        missing, bad_ns, blank, refused = run_together(
            cli.args("get", str(memory_id + 1000)), cli.args("get", "1", namespace="bad namespace"),
            cli.args("remember", "   "), cli.args("purge", "--all"))
        assert missing.returncode == ExitCode.NOT_FOUND and "NOT_FOUND" in missing.stderr
        assert bad_ns.returncode == ExitCode.INVALID
        assert blank.returncode == ExitCode.INVALID
        assert refused.returncode == ExitCode.USAGE and "--yes" in refused.stderr
        assert client.get(memory_id).text == "present"  # nothing was purged

        assert ok_json(cli("purge", "--all", "--yes", "--json")) == {"purged": 1}
        assert client.get_many([memory_id]).missing == [memory_id]


def test_stats_status_health(cli, daemon, ns):
    with daemon.client(ns) as client:
        client.remember("counted once")
    stats, status, health = cli.together(("stats", "--json"), ("status", "--json"), ("health",))
    assert [(s["name"], s["memories"], s["current"]) for s in ok_json(stats)["namespaces"]] == [(ns, 1, 1)]
    status = ok_json(status)
    assert status["pid"] == daemon.proc.pid and status["writer_alive"] is True
    assert health.returncode == ExitCode.OK and health.stdout.strip() == "healthy"


def test_unreachable_daemon_exits_4(tmp_path):
    dead = f"ipc://{tmp_path}/nobody-listens.sock"
    health = run_cli("health", "--admin-endpoint", dead, "--timeout", "0.5")
    assert health.returncode == ExitCode.UNREACHABLE and "unhealthy" in health.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_export_then_import_into_another_namespace(cli, daemon, ns, other_ns, tmp_path, fmt):
    with daemon.client(ns) as client:
        ids = client.remember_many([f"exported {i} {token()}" for i in range(7)]).ids
        client.update(ids[0], "exported and revised", meta={"nested": {"list": [1, 2.5, None]}})
        client.forget(ids[1])
        original = list(client.export())
    path = tmp_path / f"export.{fmt}"
    exported = cli("export", "-o", str(path), "--format", fmt)
    assert exported.returncode == 0 and "exported 8 versions" in exported.stderr
    result = ok_json(cli("import", str(path), "--format", fmt, "--json", namespace=other_ns))
    assert result == {"imported": 8, "skipped": 0}
    with daemon.client(other_ns) as client:
        assert list(client.export()) == original
    again = ok_json(cli("import", str(path), "--format", fmt, "--json", namespace=other_ns))
    assert again == {"imported": 0, "skipped": 8}


def test_stop_shuts_the_daemon_down(tmp_path):
    with DaemonProcess(tmp_path / "store") as own:
        stopped = run_cli("stop", "--admin-endpoint", own.admin_endpoint)
        assert stopped.returncode == 0, stopped.stderr
        assert own.proc.wait(timeout=30) == 0
        own.proc = None
