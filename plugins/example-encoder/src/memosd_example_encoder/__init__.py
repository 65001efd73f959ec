"""A minimal memosd encoder: lower-cased words hashed into 128 buckets, L2-normalised.

Select it with ``[plugins] encoder = "example-bow"`` (or ``MEMOSD_PLUGINS_ENCODER=example-bow``).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


class BagOfWordsEncoder:
    """memosd.encoders ``example-bow``: satisfies :class:`memosd.plugins.Encoder`."""

    name = "example-bow"
    version = "1"  # bump whenever the same text would get a different vector
    dim = 128

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), 128); each row has norm 1, or is all zero for a text without words."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                # crc32, not hash(): the same word must land in the same bucket in every process.
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
