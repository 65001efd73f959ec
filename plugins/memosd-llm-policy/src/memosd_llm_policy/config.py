"""The policy's settings, read from ``MEMOSD_LLM_*`` environment variables.

The entry point is a zero-argument factory, so the environment is the only
channel for configuration; it is read once, when the policy is constructed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError, NotConfigured

PREFIX = "MEMOSD_LLM_"


@dataclass(frozen=True, slots=True)
class LlmConfig:
    """Everything the policy needs to talk to one chat-completions endpoint."""

    url: str
    """Base URL of the API (``http://127.0.0.1:8080/v1``) or the full ``.../chat/completions`` URL."""
    model: str = "default"
    api_key: str = ""
    timeout_s: float = 30.0
    """Socket timeout of one request: connecting, and each wait for bytes of the answer."""
    deadline_s: float = 120.0
    """Wall-clock cap of one ``consolidate`` call, retries and back-off included."""
    max_retries: int = 2
    backoff_s: float = 0.5
    """First back-off pause; doubled on each retry (a server's Retry-After wins, capped at 30 s)."""
    max_tokens: int = 1024
    token_budget: int = 0
    """Tokens (prompt + completion) allowed per ``budget_window_s``; 0 = unlimited."""
    budget_window_s: float = 3600.0
    max_turn_chars: int = 2000
    max_prompt_chars: int = 24000
    temperature: float = 0.0
    seed: int | None = None
    json_mode: str = "auto"
    """``auto``: ask for ``response_format: json_object``, drop it if the server rejects it; ``on``; ``off``."""

    @property
    def endpoint(self) -> str:
        """The chat-completions URL requests are posted to."""
        base = self.url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LlmConfig:
        """Settings from ``MEMOSD_LLM_*``; raises NotConfigured without a URL, ConfigError on a bad value."""
        env = os.environ if environ is None else environ
        url = env.get(PREFIX + "URL", "").strip()
        if not url:
            raise NotConfigured(
                "the llm consolidation policy is not configured: set MEMOSD_LLM_URL to an "
                "OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1)")
        reader = _Reader(env)
        config = cls(
            url=url,
            model=env.get(PREFIX + "MODEL", "").strip() or "default",
            api_key=env.get(PREFIX + "API_KEY", "").strip(),
            timeout_s=reader.number("TIMEOUT_S", 30.0, low=0.01),
            deadline_s=reader.number("DEADLINE_S", 120.0, low=0.01),
            max_retries=reader.integer("MAX_RETRIES", 2, low=0, high=10),
            backoff_s=reader.number("BACKOFF_S", 0.5, low=0.0),
            max_tokens=reader.integer("MAX_TOKENS", 1024, low=16),
            token_budget=reader.integer("TOKEN_BUDGET", 0, low=0),
            budget_window_s=reader.number("BUDGET_WINDOW_S", 3600.0, low=1.0),
            max_turn_chars=reader.integer("MAX_TURN_CHARS", 2000, low=16),
            max_prompt_chars=reader.integer("MAX_PROMPT_CHARS", 24000, low=256),
            temperature=reader.number("TEMPERATURE", 0.0, low=0.0),
            seed=reader.integer("SEED", None, low=0),
            json_mode=reader.choice("JSON_MODE", "auto", ("auto", "on", "off")),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Raise NotConfigured / ConfigError when the settings cannot work."""
        if not self.url:
            raise NotConfigured("the llm consolidation policy is not configured: MEMOSD_LLM_URL is empty")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"MEMOSD_LLM_URL must be an http(s) URL, got {self.url!r}")
        if self.json_mode not in ("auto", "on", "off"):
            raise ConfigError(f"json_mode must be auto, on or off, got {self.json_mode!r}")


class _Reader:
    """Typed, range-checked reads of ``MEMOSD_LLM_<NAME>`` with the variable named in every error."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(PREFIX + name, "").strip()
        return value or None

    def number(self, name: str, default: float, low: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None
        if not value >= low or value == float("inf"):
            raise ConfigError(f"{PREFIX}{name} must be a finite number >= {low:g}, got {raw!r}")
        return value

    def integer(self, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in {low}..{high}"
            raise ConfigError(f"{PREFIX}{name} must be {bounds}, got {raw!r}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in allowed:
            raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw.lower()
