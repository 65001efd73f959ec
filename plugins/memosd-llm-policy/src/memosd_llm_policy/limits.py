"""Caps on what the policy returns: the model's output is clamped to these before memosd sees it."""

MAX_SUMMARY_CHARS = 500
MAX_KEYWORDS = 12
MAX_KEYWORD_CHARS = 48
MAX_FACTS = 32
MAX_FACT_CHARS = 400
MAX_ENTITIES = 32
MAX_ENTITY_CHARS = 80
MAX_DATE_CHARS = 40
