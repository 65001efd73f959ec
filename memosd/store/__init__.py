"""LMDB storage: the environment, its key layout and the single writer thread."""

from .environment import SCHEMA_VERSION, Environment, StoreConfig, StoreError
from .writer import WriterThread

__all__ = ["SCHEMA_VERSION", "Environment", "StoreConfig", "StoreError", "WriterThread"]
