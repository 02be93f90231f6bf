"""
Test-wide set-up: a throwaway Airflow home (SQLite) and emulator fixtures.

The environment is set before anything imports Airflow, which reads its configuration on import.

Two fixture vocabularies, on purpose:

- The suite's own, defined here and used by every test of the provider (hooks, operators, sensors, triggers,
  assets, reliability): ``emulator`` (a fresh emulator whose tokens start with ``emu-tok-``, a prefix the
  secret scans look for in logs and errors), ``sestek_conn`` (``sestek_default`` pointing at it, nothing else
  changed), ``emulator_factory`` (emulators with custom settings), ``faq``, ``airflow_db`` and
  ``fast_retries``.
- The shipped pytest plugin's (``airflow_provider_sestek.testing.pytest_plugin``): ``sestek_emulator``,
  ``sestek_connection`` (which also prepares ``dag.test()`` and shortens the waits) and
  ``sestek_emulator_session``. They are a product users install, so they are tested as one: in
  ``tests/testing`` (loaded by its ``conftest.py``) and in the user projects some tests write and run
  (``tests/testing/test_user_project_recipe.py``, ``tests/test_packaging.py``, the DEBUG-level secret scan in
  ``tests/reliability/test_secrets.py``), never as the provider tests' own set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="sestek-tests-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# dag.test() on Airflow 3 only runs DAGs that a DAG bundle holds: tests write their DAG files here.
DAGS_FOLDER = Path(_AIRFLOW_HOME) / "dags"
DAGS_FOLDER.mkdir()
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.pop("AIRFLOW_CONN_SESTEK_DEFAULT", None)
# Airflow 3.0's dag.test() renders a task's exception with rich at the console's width, 80 columns when the
# output is not a terminal, so a message the tests look for is split over lines: rich reads COLUMNS.
os.environ["COLUMNS"] = "400"

import pytest  # noqa: E402

from airflow_provider_sestek.testing import SestekEmulator  # noqa: E402
from airflow_provider_sestek.testing.pytest_plugin import connection_json  # noqa: E402
from tests._moto import s3, s3_server  # noqa: E402, F401 - fixtures: moto's S3 server on 127.0.0.1

__all__ = ["connection_json"]

REPO = Path(__file__).parent.parent


#: The compatibility suite (``pytest -m compat``) the older Airflow lines run (``make test-matrix``): every
#: operator, sensor and trigger mode through dag.test(), the durable rule and its fallback, assets and the
#: watcher where the line has them, object storage, the connection form's metadata, the example DAGs, the
#: fixture recipe. Chosen by module here, so a test added to one of them is in the suite without a marker.
COMPAT_MODULES = frozenset(
    {
        "tests/operators/test_train.py",
        "tests/operators/test_question_answering.py",
        "tests/operators/test_evaluate.py",
        "tests/example_dags/test_example_evaluation_gate.py",
        "tests/hooks/test_cases.py",
        "tests/hooks/test_report.py",
        "tests/operators/test_train_assets.py",
        "tests/operators/test_train_progress.py",
        "tests/operators/test_durable.py",
        "tests/operators/test_openlineage.py",
        "tests/sensors/test_sestek.py",
        "tests/triggers/test_sestek.py",
        "tests/triggers/test_published.py",
        "tests/assets/test_sestek_assets.py",
        "tests/example_dags/test_example_dags.py",
        "tests/hooks/test_object_storage.py",
        "tests/hooks/test_sync_end_to_end.py",
        "tests/reliability/test_lifecycle.py",
        "tests/test_provider_info.py",
        "tests/test_api.py",
        "tests/testing/test_user_project_recipe.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(REPO).as_posix() in COMPAT_MODULES:
            item.add_marker(pytest.mark.compat)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (needed by dag.test())."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return _AIRFLOW_HOME


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    from airflow_provider_sestek.hooks.sestek import clear_token_cache

    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture
def faq(tmp_path: Path) -> str:
    """A small training file: two lines of FAQ text."""
    path = tmp_path / "faq.txt"
    path.write_text("Q: When are you open?\nA: From 9 to 17 on weekdays.\n")
    return str(path)


@pytest.fixture
def emulator() -> Iterator[SestekEmulator]:
    """A fresh emulator on a free loopback port; each progress poll advances the lifecycle one step."""
    with SestekEmulator(token_prefix="emu-tok-") as emu:
        yield emu


@pytest.fixture
def sestek_conn(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> SestekEmulator:
    """``sestek_default`` pointing at the emulator (JSON env-var form, as users set it)."""
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator))
    return emulator


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., SestekEmulator]]:
    """Start emulators with custom settings; all are stopped after the test."""
    started: list[SestekEmulator] = []

    def start(**kwargs: object) -> SestekEmulator:
        emu = SestekEmulator(token_prefix="emu-tok-", **kwargs).start()  # type: ignore[arg-type]
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


# --- fast backoff ------------------------------------------------------------------------------------------


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Shrink the hook's default backoff (1 s doubling) so a retried fault costs milliseconds. Operators and
    sensors build ``SestekHook(conn_id)`` with the defaults; everything else about the retry rules (what is
    retried, how often, ``Retry-After`` which still wins) stays as shipped.
    """
    from airflow_provider_sestek.hooks.sestek import SestekHook

    defaults = dict(SestekHook.__init__.__kwdefaults__ or {})
    assert {"retry_delay", "retry_max_delay"} <= set(defaults), "SestekHook retry arguments changed"
    defaults.update(retry_delay=0.02, retry_max_delay=0.2)
    monkeypatch.setattr(SestekHook.__init__, "__kwdefaults__", defaults)
