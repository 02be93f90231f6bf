"""The pytest plugin's throwaway Airflow home (decided from an environment mapping) and its fast waits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_sestek.testing import _airflow_env
from airflow_provider_sestek.testing.pytest_plugin import FAST_WAIT, fast_waits


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary folders of this test go under ``tmp_path``, so a leftover home is seen."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path


def test_an_unconfigured_environment_gets_a_throwaway_sqlite_home(tmpdir_env: Path) -> None:
    environ: dict[str, str] = {}
    home = _airflow_env.claim_home(environ)

    assert home is not None and Path(home).parent == tmpdir_env and Path(home).is_dir()
    assert environ["AIRFLOW_HOME"] == home
    assert environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home}/airflow.db"
    assert environ["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert _airflow_env.owned_home(environ) == home and _airflow_env.owns_database(environ)

    _airflow_env.release_home(home, environ)
    assert not Path(home).exists() and _airflow_env.owned_home(environ) is None


@pytest.mark.parametrize("variable", ["AIRFLOW_HOME", "AIRFLOW_CONFIG"])
def test_a_user_configured_airflow_is_left_alone(tmpdir_env: Path, variable: str) -> None:
    environ = {variable: "/somewhere/of/theirs"}

    assert _airflow_env.claim_home(environ) is None
    assert environ == {variable: "/somewhere/of/theirs"}
    assert not _airflow_env.owns_database(environ) and not list(tmpdir_env.iterdir())


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_the_environment_variable_opts_out(tmpdir_env: Path, value: str) -> None:
    environ = {_airflow_env.OPT_OUT_ENV: value}

    assert _airflow_env.claim_home(environ) is None
    assert "AIRFLOW_HOME" not in environ and not list(tmpdir_env.iterdir())


def test_the_ini_option_opts_out(tmpdir_env: Path) -> None:
    environ: dict[str, str] = {}

    assert _airflow_env.claim_home(environ, ini_value=False) is None
    assert environ == {}


def test_a_user_set_database_is_kept_and_never_migrated(tmpdir_env: Path) -> None:
    environ = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://theirs/db"}
    home = _airflow_env.claim_home(environ)

    assert environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql://theirs/db"
    assert not _airflow_env.owns_database(environ)
    assert _airflow_env.migrate_once(environ) is False  # returns before importing Airflow
    _airflow_env.release_home(home, environ)


def test_a_home_changed_by_a_conftest_is_no_longer_ours(tmpdir_env: Path) -> None:
    environ: dict[str, str] = {}
    home = _airflow_env.claim_home(environ)
    environ["AIRFLOW_HOME"] = "/the/conftest/home"

    assert _airflow_env.owned_home(environ) is None and not _airflow_env.owns_database(environ)
    _airflow_env.release_home(home, environ)


def test_a_child_process_reuses_the_inherited_home_without_owning_its_deletion(tmpdir_env: Path) -> None:
    parent: dict[str, str] = {}
    home = _airflow_env.claim_home(parent)
    child = dict(parent)

    assert _airflow_env.claim_home(child) is None
    assert child == parent and _airflow_env.owned_home(child) == home
    _airflow_env.release_home(home, parent)


def test_the_bundle_of_a_dag_is_its_own_folder() -> None:
    assert _airflow_env.dags_folder_for("/project/my_dags/train_faq.py") == "/project/my_dags"
    assert _airflow_env.dags_folder_for("train_faq.py") == os.getcwd()


def test_fast_waits_cap_poll_sleeps_and_retry_backoff_until_undone() -> None:
    from airflow_provider_sestek.hooks.sestek import SestekHook
    from airflow_provider_sestek.waiting import ProgressWatcher

    def next_sleep(end_time: float | None = None) -> float:
        watcher = ProgressWatcher("m", wait_for_inference=False, poll_interval=30, end_time=end_time)
        return watcher.sleep_seconds(now=1000.0)

    with pytest.MonkeyPatch.context() as patch:
        fast_waits(patch)
        assert next_sleep() <= FAST_WAIT
        assert next_sleep(end_time=1000.0) == 0.0  # the deadline still wins
        assert SestekHook.__init__.__kwdefaults__["retry_delay"] == 0.02

    assert next_sleep() >= 27
    assert SestekHook.__init__.__kwdefaults__["retry_delay"] == 1.0
