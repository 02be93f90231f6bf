"""
The README's recipe works in a new user's project: only the provider and pytest, no Airflow set-up.

Each test writes a small project into a temporary folder and runs pytest on it in a subprocess with a clean
environment (no ``AIRFLOW_*``, a temporary ``HOME`` and ``TMPDIR``), on the interpreter running this suite,
so the Airflow 3 and the Airflow 2 suites each prove it on their own Airflow.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

DAG_FILE = """\
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

with DAG(
    dag_id="train_faq",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    # The default poll_interval (30 s): the sestek_connection fixture makes the waits fast.
    SestekTrainOperator(
        task_id="train",
        model_id="faq-bot",
        project_name="Customer FAQ",
        data_files=[str(Path(__file__).parent / "faq.txt")],
        wait_for_inference=True,
    )
"""

README_TEST = """\
from my_dags.train_faq import dag


def test_train(sestek_connection):
    dag_run = dag.test()
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success"
    assert sestek_connection.counters["trainings_created"] == 1
"""

WAITS_TEST = """\
import pytest

from airflow_provider_sestek.waiting import ProgressWatcher


def next_sleep():
    return ProgressWatcher("m", wait_for_inference=False, poll_interval=30, end_time=None).sleep_seconds()


def test_waits_are_fast(sestek_connection):
    assert next_sleep() <= 0.05


@pytest.mark.sestek_real_waits
def test_real_waits_marker_keeps_the_poll_interval(sestek_connection):
    assert next_sleep() >= 27
"""

USER_HOME_TEST = """\
import os


def test_user_home_is_kept(sestek_connection):
    assert os.environ["AIRFLOW_HOME"] == os.environ["EXPECTED_AIRFLOW_HOME"]
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ
"""


def write_project(root: Path, tests: dict[str, str]) -> Path:
    """A user's project: ``my_dags/`` with the DAG and its training file, ``tests/`` and a pyproject.toml."""
    (root / "my_dags").mkdir(parents=True)
    (root / "my_dags" / "__init__.py").write_text("")
    (root / "my_dags" / "train_faq.py").write_text(DAG_FILE)
    (root / "my_dags" / "faq.txt").write_text("Q: When are you open?\nA: From 9 to 17 on weekdays.\n")
    (root / "tests").mkdir()
    for name, text in tests.items():
        (root / "tests" / name).write_text(text)
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\naddopts = "--strict-markers"\n'
    )
    return root


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No AIRFLOW_* and nothing of this suite's environment: a temporary HOME and TMPDIR, the venv on PATH."""
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    return {
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **extra,
    }


def run_pytest(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_readme_recipe_runs_a_dag_in_a_new_project_without_airflow_setup(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", {"test_train_faq.py": README_TEST, "test_waits.py": WAITS_TEST})
    env = clean_env(tmp_path)

    started = time.monotonic()
    result = run_pytest(project, env)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout
    # Airflow's default home is ~/airflow: the plugin must have kept Airflow out of it.
    assert not (Path(env["HOME"]) / "airflow").exists()
    # The throwaway home is deleted at the end of the session.
    assert not list(Path(env["TMPDIR"]).glob("sestek-pytest-airflow-home-*"))
    # A 30 s poll interval through the emulator's whole lifecycle would take minutes.
    assert elapsed < 150, f"the recipe took {elapsed:.0f} s"


@pytest.mark.slow
def test_a_user_set_airflow_home_is_left_alone(tmp_path: Path) -> None:
    user_home = tmp_path / "my-airflow-home"
    user_home.mkdir()
    project = write_project(tmp_path / "project", {"test_home.py": USER_HOME_TEST})
    env = clean_env(tmp_path, AIRFLOW_HOME=str(user_home), EXPECTED_AIRFLOW_HOME=str(user_home))

    result = run_pytest(project, env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(Path(env["TMPDIR"]).glob("sestek-pytest-airflow-home-*")), "no throwaway home may be made"
    assert not (user_home / "airflow.db").exists(), "the plugin must not create or migrate the user's DB"
    assert not (Path(env["HOME"]) / "airflow").exists()


@pytest.mark.slow
def test_opting_out_leaves_airflow_unconfigured(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "project",
        {"test_home.py": "import os\n\ndef test_no_home():\n    assert 'AIRFLOW_HOME' not in os.environ\n"},
    )
    env = clean_env(tmp_path, SESTEK_PYTEST_AIRFLOW_HOME="0")

    result = run_pytest(project, env)

    assert result.returncode == 0, result.stdout + result.stderr
