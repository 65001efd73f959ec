"""Build installable-looking plugin packages at test time (a module plus ``*.dist-info``).

Putting the returned directory on a daemon's PYTHONPATH is enough for
importlib.metadata to discover the entry points, exactly as for a pip install.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import msgspec

from memosd.testing import DaemonProcess

# Encoders that misbehave in each way the daemon must survive.
BROKEN_SOURCE = dedent('''
    import time
    import numpy as np

    class _Base:
        version = "1"
        dim = 8

        def _unit(self, n):
            out = np.zeros((n, self.dim), dtype=np.float32)
            out[:, 0] = 1.0
            return out

    class Raises(_Base):
        name = "raises"
        def encode(self, texts):
            raise RuntimeError("model weights are missing")

    class WrongDim(_Base):
        name = "wrong-dim"
        def encode(self, texts):
            return np.full((len(texts), 7), 1 / np.sqrt(7), dtype=np.float32)

    class WrongDtype(_Base):
        name = "wrong-dtype"
        def encode(self, texts):
            return self._unit(len(texts)).astype(np.float64)

    class NotFinite(_Base):
        name = "not-finite"
        def encode(self, texts):
            out = self._unit(len(texts))
            out[:, 1] = np.nan
            return out

    class Hangs(_Base):
        name = "hangs"
        def encode(self, texts):
            time.sleep(3600)

    class FailsLater(_Base):
        """Passes the load probe, then raises on a memory containing 'boom' (a run-time failure)."""
        name = "fails-later"
        def encode(self, texts):
            if any("boom" in text for text in texts):
                raise ValueError("cannot encode boom")
            return self._unit(len(texts))

    class BadBackend:
        def __init__(self, dim):
            pass
        def add(self, keys, vectors):
            pass
        def remove(self, keys):
            pass
        def search(self, vector, k, allowed=None):
            raise MemoryError("index corrupted")
        def __len__(self):
            return 0
        nbytes = 0
''')

IMPORT_ERROR_SOURCE = "import memosd_no_such_dependency  # fails at import\n"

# A working encoder: character trigrams hashed into DIM buckets. Each call is appended to the
# file named by $TEST_ENCODER_LOG (one line per call: the number of texts, prefixed with q for
# encode_query, which makes it an asymmetric encoder), and
# $TEST_ENCODER_DELAY_S slows each call down (to catch a migration in the middle).
WORKING_SOURCE = dedent('''
    import os
    import time
    import zlib
    import numpy as np

    class Trigrams:
        name = "trigrams"
        version = os.environ.get("TEST_ENCODER_VERSION", "1")
        dim = 64

        def encode_query(self, texts):
            return self.encode(texts, "q")

        def encode(self, texts, kind=""):
            log = os.environ.get("TEST_ENCODER_LOG")
            if log:
                with open(log, "a") as fh:
                    fh.write(f"{kind}{len(texts)}\\n")
            delay = float(os.environ.get("TEST_ENCODER_DELAY_S", "0"))
            if delay:
                time.sleep(delay)
            out = np.zeros((len(texts), self.dim), dtype=np.float32)
            for row, text in enumerate(texts):
                padded = f"  {text.lower()}  "
                for i in range(len(padded) - 2):
                    out[row, zlib.crc32(padded[i:i + 3].encode()) % self.dim] += 1.0
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
            return out

    from memosd.plugins.builtin import NumpyBackend

    class SlowGraph(NumpyBackend):
        """Exact search, but adding costs 4 ms a vector, as inserting into a large graph index does."""

        def add(self, keys, vectors):
            time.sleep(0.004 * len(keys))
            super().add(keys, vectors)
''')


def write_package(root: Path, dist: str, module: str, source: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """Write ``module.py`` and ``<dist>-1.0.dist-info/{METADATA,entry_points.txt}`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in names.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return root


def install_test_plugins(root: Path) -> Path:
    """Every test plugin in one directory (put it on PYTHONPATH)."""
    write_package(root, "memosd_test_broken", "memosd_test_broken", BROKEN_SOURCE, {
        "memosd.encoders": {
            "raises": "memosd_test_broken:Raises",
            "wrong-dim": "memosd_test_broken:WrongDim",
            "wrong-dtype": "memosd_test_broken:WrongDtype",
            "not-finite": "memosd_test_broken:NotFinite",
            "hangs": "memosd_test_broken:Hangs",
            "fails-later": "memosd_test_broken:FailsLater",
            "missing-attr": "memosd_test_broken:NoSuchClass",
        },
        "memosd.backends": {"bad-backend": "memosd_test_broken:BadBackend"},
    })
    write_package(root, "memosd_test_import_error", "memosd_test_import_error", IMPORT_ERROR_SOURCE, {
        "memosd.encoders": {"import-error": "memosd_test_import_error:Encoder"},
    })
    write_package(root, "memosd_test_trigrams", "memosd_test_trigrams", WORKING_SOURCE, {
        "memosd.encoders": {"trigrams": "memosd_test_trigrams:Trigrams"},
        "memosd.backends": {"slow-graph": "memosd_test_trigrams:SlowGraph"},
    })
    return root


def plugins_json(daemon: DaemonProcess) -> dict:
    """``memosd plugins --json`` against the daemon, through the real CLI."""
    out = subprocess.run([sys.executable, "-m", "memosd", "plugins", "--json", "--admin-endpoint",
                          daemon.admin_endpoint], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return msgspec.json.decode(out.stdout)


def plugin(report: dict, group: str, name: str) -> dict:
    return next(p for p in report["plugins"] if p["group"] == group and p["name"] == name)


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; that value is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
