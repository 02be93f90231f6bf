"""
The real-Airflow tests start an Airflow (scheduler, dag-processor, triggerer, api-server) and take a few
minutes, so they run only when asked for: ``make test-airflow`` (``pytest tests/real_airflow -m airflow_real``).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "airflow_real" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="starts a real Airflow: run `make test-airflow` (pytest -m airflow_real)")
    for item in items:
        if item.get_closest_marker("airflow_real") is not None:
            item.add_marker(skip)
