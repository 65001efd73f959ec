"""Benchmark and evaluation commands (``memosd bench``, ``memosd eval``)."""
