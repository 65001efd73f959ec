"""memosd's plugin system: encoders, vector backends and consolidation policies.

Plugins are found through Python entry points (see :mod:`memosd.plugins.api`
for the groups and the interface each plugin implements), loaded under a guard
and bypassed when they misbehave; :mod:`memosd.plugins.registry` does both.
"""

from .api import (
    BACKENDS,
    ENCODERS,
    GROUPS,
    POLICIES,
    Consolidation,
    ConsolidationPolicy,
    Encoder,
    EntityMention,
    Fact,
    PageView,
    TurnView,
    VectorBackend,
)

__all__ = [
    "BACKENDS", "ENCODERS", "GROUPS", "POLICIES", "Consolidation", "ConsolidationPolicy", "Encoder",
    "EntityMention", "Fact", "PageView", "TurnView", "VectorBackend",
]
