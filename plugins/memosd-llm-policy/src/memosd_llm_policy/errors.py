"""Errors the policy raises. memosd reports any of them and consolidates the page with its built-in policy."""

from __future__ import annotations


class LlmPolicyError(RuntimeError):
    """Base class: the llm policy could not consolidate a page."""


class NotConfigured(LlmPolicyError):
    """No endpoint is configured (``MEMOSD_LLM_URL`` unset)."""


class ConfigError(LlmPolicyError):
    """A ``MEMOSD_LLM_*`` setting has a value the policy cannot use."""


class BudgetExhausted(LlmPolicyError):
    """The token budget of the current window would be exceeded; nothing was sent."""


class RequestFailed(LlmPolicyError):
    """The endpoint could not be reached or answered with an error, after any retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class InvalidResponse(LlmPolicyError):
    """The model's answer held nothing usable (no valid JSON, or no valid summary and facts)."""
