"""Registers ``memosd bench`` and ``memosd eval`` on the CLI parser."""

from __future__ import annotations


def add_bench_commands(sub, common) -> None:
    return None
