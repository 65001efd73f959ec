"""Structured logging: one structlog processor chain for memosd's and libraries' logs."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

import structlog

_request: ContextVar[dict | None] = ContextVar("memosd_request", default=None)
"""The request being served (id, op, namespace): one ContextVar set per request, where structlog's
clear and bind cost several times more on every request for what only the rare log line reads."""


def bind_request(context: dict | None) -> None:
    """Name the request every log line of this task (and the tasks it starts) belongs to; None: none."""
    _request.set(context)


def _merge_request(logger, method: str, event_dict: dict) -> dict:
    context = _request.get()
    if context:
        for key, value in context.items():
            event_dict.setdefault(key, value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Route structlog and stdlib logging through one chain, printing JSON lines (or console text) to stderr."""
    shared = [
        structlog.contextvars.merge_contextvars,
        _merge_request,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str = "memosd"):
    return structlog.get_logger(name)
