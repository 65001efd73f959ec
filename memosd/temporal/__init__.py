"""Time expressions: what a text says about when, and what a question asks about time."""

from .intent import NO_INTENT, TimeIntent, time_intent
from .mentions import Mention, find_mentions, month_bits, resolved_hull

__all__ = ["NO_INTENT", "Mention", "TimeIntent", "find_mentions", "month_bits", "resolved_hull", "time_intent"]
