"""pytest plugin (entry point ``pytest11``) giving tests a ``memosd_daemon`` fixture."""

from .testing import pytest_plugin_fixture

memosd_daemon = pytest_plugin_fixture()
