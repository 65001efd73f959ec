"""The semantic lookaside buffer in front of recall (see cache.py)."""
