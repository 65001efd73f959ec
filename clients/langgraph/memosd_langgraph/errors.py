"""Typed errors for input the store refuses before anything is sent (all are ``ValueError``)."""

from __future__ import annotations


class InvalidValueError(ValueError):
    """An item's value (or its ``index`` paths) cannot be stored."""


class InvalidFilterError(ValueError):
    """A search filter, limit or offset is malformed."""


class InvalidKeyError(ValueError):
    """An item key is not a string."""
