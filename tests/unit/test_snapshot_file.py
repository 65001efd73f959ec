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
    snapshot.write(env, tmp_path, {"ns": state}, "fingerprint")
    read = snapshot.read(env, tmp_path, "fingerprint")["ns"]
    for name in ("scores", "slots", "ids", "present"):
        assert read[name].dtype is np.dtype(state[name].dtype.type), name
        assert np.array_equal(read[name], state[name])
    assert read["swapped"].dtype == np.dtype(">f4") and np.array_equal(read["swapped"], state["swapped"])
    assert list(read["texts"]) == ["a", "bc"]
    env.close()
