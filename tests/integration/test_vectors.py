"""Vectors: encode texts through the daemon and recall by vector over the real socket."""

import numpy as np
import pytest

from memosd.testing import DaemonProcess
from memosd_client import InvalidArgumentError


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with DaemonProcess(tmp_path_factory.mktemp("vectors") / "store") as daemon:
        with daemon.client("vectors") as c:
            c.remember_many(["the red fox jumps over the fence", "blue whales sing in the deep ocean",
                             "a red car is parked outside", "the fox den is under the old oak"])
            yield c


def test_encode_returns_unit_vectors_of_the_announced_dimension(client):
    dim = client.hello().encoder.dim
    vectors = client.encode(["red fox", "whales", "the of and"])
    assert vectors.shape == (3, dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()  # stopwords only: nothing to encode


def test_recall_by_vector_finds_what_the_text_finds(client):
    vector = client.encode(["red fox"])[0]
    by_vector = [h.memory.text for h in client.recall(vector=vector, k=2)]
    assert by_vector[0] == "the red fox jumps over the fence"
    assert all(h.matched == ["hash"] for h in client.recall(vector=vector, k=2))


def test_bad_vectors_are_refused(client):
    dim = client.hello().encoder.dim
    with pytest.raises(InvalidArgumentError):
        client.recall(vector=np.ones(dim - 1, dtype=np.float32))
    bad = np.zeros(dim, dtype=np.float32)
    bad[3] = np.nan
    with pytest.raises(InvalidArgumentError):
        client.recall(vector=bad)
    with pytest.raises(InvalidArgumentError):
        client.recall("text", vector=np.zeros(dim, dtype=np.float32))


def test_a_dense_vector_is_answered(client):
    # Every component nonzero: the daemon uses the largest ones rather than scanning every bucket.
    dim = client.hello().encoder.dim
    dense = np.random.default_rng(7).random(dim, dtype=np.float32)
    assert len(client.recall(vector=dense, k=3)) <= 3
