"""
Pytest fixtures for testing DAGs and code that talk to Sestek AI, without the real service.

Registered through the ``pytest11`` entry point, so installing the provider makes them available:

- ``sestek_emulator``: a running :class:`SestekEmulator` for one test. Configure it with
  ``@pytest.mark.sestek_emulator(advance="time", fail_models=["bad"])`` (any constructor argument).
- ``sestek_emulator_session``: one emulator shared by the whole session (call ``reset()`` as needed).
- ``sestek_connection``: ``sestek_emulator`` plus ``AIRFLOW_CONN_SESTEK_DEFAULT`` pointing at it.

This module imports neither Airflow nor anything heavy, so loading the plugin costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .emulator import SestekEmulator

__all__ = ["sestek_connection", "sestek_emulator", "sestek_emulator_session"]

#: The Airflow connection id the ``sestek_connection`` fixture defines.
CONNECTION_ID = "sestek_default"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``sestek_emulator`` marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers", "sestek_emulator(**kwargs): SestekEmulator constructor arguments for the sestek_emulator fixture"
    )


def connection_json(emulator: SestekEmulator, **extra: Any) -> str:
    """
    Return the Airflow connection, in its JSON environment-variable form, that points at ``emulator``.

    :param emulator: a started emulator.
    :param extra: more (or overriding) connection extra keys, e.g. ``timeout=5``.
    """
    client_id, client_secret = emulator.train_client
    inference_id, inference_secret = emulator.inference_client
    return json.dumps(
        {
            "conn_type": "sestek",
            "host": emulator.url,
            "login": client_id,
            "password": client_secret,
            "extra": {
                "identity_url": emulator.identity_url,
                "tenant": emulator.tenant,
                "inference_client_id": inference_id,
                "inference_client_secret": inference_secret,
                **extra,
            },
        }
    )


@pytest.fixture
def sestek_emulator(request: pytest.FixtureRequest) -> Iterator[SestekEmulator]:
    """A started emulator for one test, stopped afterwards."""
    marker = request.node.get_closest_marker("sestek_emulator")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    with SestekEmulator(**kwargs) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def sestek_emulator_session() -> Iterator[SestekEmulator]:
    """One emulator for the whole session; tests that care should call ``reset()`` first."""
    with SestekEmulator() as emulator:
        yield emulator


@pytest.fixture
def sestek_connection(sestek_emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> SestekEmulator:
    """``sestek_emulator`` with ``AIRFLOW_CONN_SESTEK_DEFAULT`` set to a connection pointing at it."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION_ID.upper()}", connection_json(sestek_emulator))
    return sestek_emulator
