"""
Fixtures of the emulator's own tests: the public pytest plugin's fixtures, loaded explicitly.

``pytest_plugins`` is only allowed in the root conftest, and the plugin's entry point is only active
once the package is installed, so the fixtures are imported here instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_sestek.testing.pytest_plugin import (  # noqa: F401
    pytest_configure,
    sestek_connection,
    sestek_emulator,
    sestek_emulator_session,
)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A keep-alive HTTP session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session
