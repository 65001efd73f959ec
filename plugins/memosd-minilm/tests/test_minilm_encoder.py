"""The encoder on its own: the contract memosd checks on every call, plus meaning and determinism."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from memosd.plugins import Encoder
from memosd.plugins.guard import check_vectors
from memosd_minilm import MiniLMEncoder


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_meets_the_protocol(encoder):
    assert isinstance(encoder, Encoder)
    assert (encoder.name, encoder.version, encoder.dim) == ("minilm", "1", 384)
    texts = ["Caroline: I went to the LGBTQ support group yesterday.", "hello", "", "   ", "émigré café 東京"]
    # The same checks memosd applies: float32, (n, dim), finite, rows of norm 1 or all zero.
    vectors = check_vectors(encoder.encode(texts), len(texts), encoder.dim, "minilm")
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[[0, 1, 4]], 1.0, atol=1e-5)
    assert not vectors[2].any() and not vectors[3].any()  # nothing to encode: zero, never a made-up vector
    assert encoder.encode([]).shape == (0, 384)


def test_related_texts_are_closer_than_unrelated(encoder):
    query, related, unrelated = encoder.encode([
        "What kind of pet did she get?",
        "She adopted a puppy from the shelter last week.",
        "The quarterly revenue report is due on Friday.",
    ])
    assert query @ related > 0.4 > query @ unrelated


def test_deterministic_whatever_the_batch(encoder):
    texts = ["a short one", "a much longer text about hiking in the mountains with friends last summer", "x"]
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.array_equal(encoder.encode(texts), alone)  # bit for bit: memosd never mixes vectors
    assert np.array_equal(encoder.encode(texts[::-1])[::-1], alone)


def test_same_vector_in_another_process(encoder):
    text = "Melanie: We adopted a puppy from the shelter last week."
    code = ("import sys; from memosd_minilm import MiniLMEncoder; "
            f"sys.stdout.buffer.write(MiniLMEncoder().encode([{text!r}]).tobytes())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True).stdout
    assert other == encoder.encode([text]).tobytes()


def test_long_text_is_truncated_not_rejected(encoder):
    vector = encoder.encode(["word " * 2000])
    assert vector.shape == (1, 384) and abs(np.linalg.norm(vector) - 1) < 1e-5
