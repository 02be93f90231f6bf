"""
The production-shaped deployment (PostgreSQL, Redis, CeleryExecutor with two workers, two triggerers, S3) takes
a few minutes and needs Debian packages, so its tests run only when asked for: ``make test-production``
(``pytest tests/production -m airflow_production``).
"""

from __future__ import annotations

import pytest

# One deployment per module that asks for it (module scope): test_production.py and the disruption modules beside it.
from tests.production.test_production import production  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "airflow_production" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="starts a production-shaped Airflow: run `make test-production`")
    for item in items:
        if item.get_closest_marker("airflow_production") is not None:
            item.add_marker(skip)
