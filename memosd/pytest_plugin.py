"""pytest plugin (entry point ``pytest11``) giving tests a ``memosd_daemon`` fixture."""

from .testing import make_daemon_fixture

memosd_daemon = make_daemon_fixture()
