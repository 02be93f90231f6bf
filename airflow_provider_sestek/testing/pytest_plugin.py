"""
Pytest fixtures for testing DAGs and code that talk to Sestek AI, without the real service.

Registered through the ``pytest11`` entry point, so installing the provider makes them available:

- ``sestek_emulator``: a running :class:`SestekEmulator` for one test. Configure it with
  ``@pytest.mark.sestek_emulator(advance="time", fail_models=["bad"])`` (any constructor argument).
- ``sestek_emulator_session``: one emulator shared by the whole session (call ``reset()`` as needed).
- ``sestek_connection``: ``sestek_emulator`` plus ``AIRFLOW_CONN_SESTEK_DEFAULT`` pointing at it, a migrated
  metadata DB for ``dag.test()`` and fast waits (opt out with ``@pytest.mark.sestek_real_waits``).

Unless the user set ``AIRFLOW_HOME`` (or opted out with ``SESTEK_PYTEST_AIRFLOW_HOME=0`` or the ini option
``sestek_airflow_home = false``), the session runs against a throwaway Airflow home with a SQLite DB, set up
before any conftest imports Airflow (see :mod:`._airflow_env`).

This module imports neither Airflow nor anything heavy, so loading the plugin costs nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from . import _airflow_env
from ._connection import CONNECTION_ID, connection_json
from .emulator import SestekEmulator

__all__ = ["sestek_connection", "sestek_emulator", "sestek_emulator_session"]

#: The longest sleep between progress polls under ``sestek_connection``: the emulator answers at once.
FAST_WAIT = 0.05
#: The hook's retry back-off under ``sestek_connection`` (first delay, longest delay), in seconds.
FAST_RETRY = {"retry_delay": 0.02, "retry_max_delay": 0.2}
#: The ini option that, set to false, keeps the plugin away from Airflow's configuration.
HOME_INI = "sestek_airflow_home"

_HOME_KEY = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``sestek_airflow_home`` ini option."""
    parser.addini(
        HOME_INI,
        "give the session a throwaway Airflow home (SQLite) when AIRFLOW_HOME is not set (default: true)",
        type="bool",
        default=True,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """
    Point Airflow at a throwaway home before any conftest or test module imports Airflow.

    :param early_config: the session's configuration.
    """
    early_config.stash[_HOME_KEY] = _airflow_env.claim_home(os.environ, bool(early_config.getini(HOME_INI)))


def pytest_unconfigure(config: pytest.Config) -> None:
    """
    Delete the throwaway home this session created.

    :param config: the session's configuration.
    """
    _airflow_env.release_home(config.stash.get(_HOME_KEY, None), os.environ)


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers, so ``--strict-markers`` accepts them."""
    config.addinivalue_line(
        "markers", "sestek_emulator(**kwargs): SestekEmulator constructor arguments for the sestek_emulator fixture"
    )
    config.addinivalue_line(
        "markers", "sestek_real_waits: sestek_connection keeps the shipped poll sleeps and retry back-off"
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


def fast_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Make the waits of one test fast: sleeps between progress polls of at most :data:`FAST_WAIT` and the
    hook's default retry back-off shrunk to :data:`FAST_RETRY`. Deadlines (``timeout``, ``Retry-After``)
    stay as they are, so a test of a timeout still times out.

    :param monkeypatch: the test's monkeypatch, which undoes both afterwards.
    """
    from airflow_provider_sestek.hooks.sestek import SestekHook
    from airflow_provider_sestek.waiting import ProgressWatcher

    real_sleep = ProgressWatcher.sleep_seconds

    @functools.wraps(real_sleep)
    def sleep_seconds(self: ProgressWatcher, *args: Any, **kwargs: Any) -> float:
        return min(real_sleep(self, *args, **kwargs), FAST_WAIT)

    monkeypatch.setattr(ProgressWatcher, "sleep_seconds", sleep_seconds)
    # Operators and sensors build SestekHook(conn_id) with its keyword defaults: shrinking those reaches them.
    defaults = dict(SestekHook.__init__.__kwdefaults__ or {})
    if not set(FAST_RETRY) <= set(defaults):
        raise RuntimeError(f"SestekHook no longer takes {sorted(FAST_RETRY)}: update the pytest plugin")
    monkeypatch.setattr(SestekHook.__init__, "__kwdefaults__", {**defaults, **FAST_RETRY})


def prepare_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Make the throwaway Airflow home ready for ``dag.test()``: migrate its DB (once per session) and, on
    Airflow 3, let ``dag.test()`` find the DAG in a bundle: its own folder, for the duration of the call.
    Nothing happens when the user configured Airflow (``AIRFLOW_HOME``, the DB or ``dags_folder``).

    :param monkeypatch: the test's monkeypatch, which undoes the ``dag.test()`` wrapper afterwards.
    """
    if not _airflow_env.migrate_once(os.environ) or "AIRFLOW__CORE__DAGS_FOLDER" in os.environ:
        return
    import airflow

    if int(airflow.__version__.split(".")[0]) < 3:
        return  # Airflow 2's dag.test() runs the DAG object it is called on; no bundle is parsed.
    from airflow import settings
    from airflow.sdk.definitions.dag import DAG

    real_test = DAG.test

    @functools.wraps(real_test)
    def test(self: DAG, *args: Any, **kwargs: Any) -> Any:
        folder = _airflow_env.dags_folder_for(self.fileloc)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", folder)
            # The default bundle reads settings.DAGS_FOLDER, computed when Airflow was imported.
            patch.setattr(settings, "DAGS_FOLDER", folder)
            return real_test(self, *args, **kwargs)

    monkeypatch.setattr(DAG, "test", test)


@pytest.fixture
def sestek_connection(
    sestek_emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> SestekEmulator:
    """
    ``sestek_emulator`` with ``AIRFLOW_CONN_SESTEK_DEFAULT`` set to a connection pointing at it, the throwaway
    Airflow home ready for ``dag.test()`` (see :func:`prepare_airflow`) and, unless the test is marked
    ``sestek_real_waits``, fast waits (see :func:`fast_waits`).
    """
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION_ID.upper()}", connection_json(sestek_emulator))
    prepare_airflow(monkeypatch)
    if request.node.get_closest_marker("sestek_real_waits") is None:
        fast_waits(monkeypatch)
    return sestek_emulator
