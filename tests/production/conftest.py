"""
The production-shaped deployment (PostgreSQL, Redis, CeleryExecutor with two workers, two triggerers, S3) takes
a few minutes and needs Debian packages, so its tests run only when asked for: ``make test-production``
(``pytest tests/production -m airflow_production``).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "airflow_production" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="starts a production-shaped Airflow: run `make test-production`")
    for item in items:
        if item.get_closest_marker("airflow_production") is not None:
            item.add_marker(skip)
