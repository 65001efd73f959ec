"""Grids of daemon settings to tune over: ``section.key=v1,v2`` specs, sweeps and joint grids.

A setting is a key of the daemon's configuration (``tiers.page_weight``,
``retrieval.k1``) and reaches a temporary daemon as its environment variable
(``MEMOSD_TIERS_PAGE_WEIGHT``). Values are checked and normalised against the
configuration's own types, so ``0.40`` and ``0.4`` are one value and a point
that sets a key to its default is the default point.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import ConfigError, load_config

DEFAULT_NEIGHBOURHOOD: tuple[str, ...] = (
    "retrieval.k1=0.5,1.2",
    "retrieval.b=0.0,0.4",
    "tiers.fine_weight=0.25,0.5",
    "tiers.page_weight=0.6,1.5",
    "tiers.neighbor_weight=0.3,0.6",
    "tiers.speaker_weight=0.2,0.5",
    "tiers.time_weight=0.0,0.6",
    "tiers.period_weight=0.5,2.0",
    "tiers.candidate_pages=4,16",
    "tiers.knowledge_weight=0.1",
)
"""The one-at-a-time sweep the tuner runs when given no ``--param``: a value either side of each default
that a setting has (the defaults themselves were chosen by earlier sweeps and joint grids, docs/benchmarks.md)."""


def _default_value(key: str) -> object:
    section, _, name = key.partition(".")
    return getattr(getattr(load_config(environ={}), section), name)


def normalise(key: str, text: str) -> str:
    """``text`` as the configuration reads it for ``key``, back as text (``"0.40"`` -> ``"0.4"``).

    Raises ValueError naming the key for an unknown key or a value of the wrong type.
    """
    if key.count(".") != 1:
        raise ValueError(f"{key!r}: expected section.key, e.g. tiers.page_weight")
    section, _, name = key.partition(".")
    try:
        config = load_config(environ={}, overrides={key: text.strip()})
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return str(getattr(getattr(config, section), name))


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One tuned setting: its key, the values to try and its default (all normalised text)."""

    key: str
    values: tuple[str, ...]
    default: str

    @property
    def env_name(self) -> str:
        """The environment variable that sets it in a daemon."""
        return env_name(self.key)


def env_name(key: str) -> str:
    """``tiers.page_weight`` -> ``MEMOSD_TIERS_PAGE_WEIGHT``."""
    section, _, name = key.partition(".")
    return f"MEMOSD_{section.upper()}_{name.upper()}"


def parse_param(text: str) -> ParamSpec:
    """``"tiers.page_weight=0.2,0.4,0.6"`` -> a :class:`ParamSpec` (values checked against the config's types)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not values.strip():
        raise ValueError(f"{text!r}: expected section.key=v1,v2,...")
    parsed = tuple(dict.fromkeys(normalise(key, v) for v in values.split(",") if v.strip()))
    return ParamSpec(key=key, values=parsed, default=str(_default_value(key)))


@dataclass(frozen=True, slots=True)
class GridPoint:
    """A set of settings that differ from the defaults; the empty point is the default configuration."""

    settings: tuple[tuple[str, str], ...] = ()
    """(key, normalised value) pairs, sorted by key, none equal to its default."""

    @property
    def label(self) -> str:
        """``"default"`` or ``"tiers.page_weight=0.6 retrieval.k1=1.2"``."""
        return " ".join(f"{key}={value}" for key, value in self.settings) or "default"

    @property
    def is_default(self) -> bool:
        return not self.settings

    def env(self) -> dict[str, str]:
        """The environment that gives a daemon these settings."""
        return {env_name(key): value for key, value in self.settings}

    def value(self, key: str) -> str | None:
        """The value this point sets ``key`` to; None when it leaves the default."""
        return dict(self.settings).get(key)


def point(settings: dict[str, str], defaults: dict[str, str]) -> GridPoint:
    """A grid point from key -> value, dropping values equal to ``defaults[key]`` (so duplicates collapse)."""
    kept = {key: value for key, value in settings.items() if defaults.get(key) != value}
    return GridPoint(tuple(sorted(kept.items())))


def sweep_grid(specs: Sequence[ParamSpec]) -> list[GridPoint]:
    """The default point, then each parameter's values one at a time with every other setting at its default."""
    defaults = {spec.key: spec.default for spec in specs}
    points = [GridPoint()]
    for spec in specs:
        for value in spec.values:
            candidate = point({spec.key: value}, defaults)
            if candidate not in points:
                points.append(candidate)
    return points


def joint_grid(specs: Sequence[ParamSpec]) -> list[GridPoint]:
    """The default point, then every combination of the specs' values (the product grows fast: keep it small)."""
    defaults = {spec.key: spec.default for spec in specs}
    points = [GridPoint()]
    for values in itertools.product(*(spec.values for spec in specs)):
        candidate = point(dict(zip((spec.key for spec in specs), values)), defaults)
        if candidate not in points:
            points.append(candidate)
    return points
