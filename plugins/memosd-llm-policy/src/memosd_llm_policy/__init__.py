"""A memosd consolidation policy backed by an OpenAI-compatible chat-completions endpoint.

Select it as the ``llm`` entry point of ``memosd.policies``; configure it with
``MEMOSD_LLM_*`` environment variables (see the package README). Without
``MEMOSD_LLM_URL`` it refuses to start, and memosd uses its built-in policy.
"""

from __future__ import annotations

from .config import LlmConfig
from .errors import BudgetExhausted, ConfigError, InvalidResponse, LlmPolicyError, NotConfigured, RequestFailed
from .policy import LlmPolicy

__all__ = [
    "BudgetExhausted", "ConfigError", "InvalidResponse", "LlmConfig", "LlmPolicy", "LlmPolicyError",
    "NotConfigured", "RequestFailed",
]
