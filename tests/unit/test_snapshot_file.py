"""The index snapshot file itself (engine/snapshot.py), written and read in-process on a real LMDB."""

from __future__ import annotations

import numpy as np

from memosd.engine import snapshot
from memosd.store.environment import Environment, StoreConfig


def test_arrays_read_back_with_numpys_own_dtypes(tmp_path):
    # numpy takes the fast path of np.add.at (how recall sums posting lists) only for its own dtype
    # objects; a plain pickle reads back equal copies, and recall after a clean restart ran 2x slower.
    env = Environment(StoreConfig(path=tmp_path / "store"))
    state = {"scores": np.arange(5, dtype=np.float32), "slots": np.arange(5, dtype=np.int32),
             "ids": np.arange(5, dtype=np.int64), "present": np.ones(5, dtype=bool),
             "swapped": np.arange(3, dtype=">f4"), "texts": np.array(["a", "bc"], dtype=object)}
    header = snapshot.Header(snapshot.FORMAT, "fingerprint", snapshot.store_id(env), {"ns": (1, b"mark", 3)})
    snapshot.write(tmp_path, header, {"ns": state})
    read = snapshot.read(env, tmp_path, "fingerprint").take("ns", 1, b"mark")
    for name in ("scores", "slots", "ids", "present"):
        assert read[name].dtype is np.dtype(state[name].dtype.type), name
        assert np.array_equal(read[name], state[name])
    assert read["swapped"].dtype == np.dtype(">f4") and np.array_equal(read["swapped"], state["swapped"])
    assert list(read["texts"]) == ["a", "bc"]
    env.close()


def test_a_namespace_is_taken_only_at_its_mark_and_only_for_its_own_store(tmp_path):
    env = Environment(StoreConfig(path=tmp_path / "store"))
    header = snapshot.Header(snapshot.FORMAT, "fp", snapshot.store_id(env),
                             {"a": (1, b"m1", 4), "b": (2, None, 0), "c": (3, b"m3", 9)})
    snapshot.write(tmp_path, header, {"a": "state a", "b": "state b", "c": "state c"})
    found = snapshot.read(env, tmp_path, "fp")
    assert found.take("a", 1, b"m1") == "state a"
    assert found.take("b", 2, None) == "state b"  # never written since marks are kept, in both
    assert found.take("c", 3, b"other") is None  # written since the snapshot: to be brought forward
    assert found.take("c", 4, b"m3") is None  # another namespace under the same name
    assert found.behind("c", 4) is None
    assert found.behind("c", 3) == ("state c", (b"m3", 9))
    assert found.take("d", 5, None) is None  # made since
    assert snapshot.read(env, tmp_path, "other code") is None
    other = Environment(StoreConfig(path=tmp_path / "other"))
    assert snapshot.read(other, tmp_path, "fp") is None  # the file of another store
    env.close()
    other.close()
