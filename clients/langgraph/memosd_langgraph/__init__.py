"""A LangGraph store (``langgraph.store.base.BaseStore``) kept in the memosd memory daemon."""

from .errors import InvalidFilterError, InvalidKeyError, InvalidValueError
from .naming import NamespaceCodec
from .store import MemosdStore

__version__ = "0.1.0"

__all__ = ["InvalidFilterError", "InvalidKeyError", "InvalidValueError", "MemosdStore", "NamespaceCodec"]
