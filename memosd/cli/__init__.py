"""The ``memosd`` command line."""
