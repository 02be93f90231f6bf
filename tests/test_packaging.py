"""The built wheel works on its own: fresh venv, only Airflow beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")


@pytest.mark.slow
def test_wheel_installs_and_is_discovered(tmp_path: Path) -> None:
    import airflow

    subprocess.run(
        [UV, "build", "--wheel", "--sdist", "-o", str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    assert wheel.name.startswith("airflow_provider_sestek-") and sdist.name.startswith("airflow_provider_sestek-")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "airflow_provider_sestek/py.typed",
        "airflow_provider_sestek/testing/pytest_plugin.py",
    ):
        assert expected in names, expected
    # The example DAGs live beside pyproject.toml, for users to copy; the wheel does not ship them.
    assert not [n for n in names if n.startswith("tests/") or "example_dags" in n]

    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            UV,
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            str(wheel),
            f"apache-airflow=={airflow.__version__}",
            "pytest",
        ],
        check=True,
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home")}
    env.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    out = subprocess.run(
        [str(python), "-m", "airflow", "providers", "list"], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "airflow-provider-sestek" in out
    # The pytest plugin ships with the wheel and its fixtures work in a user's suite.
    user_tests = tmp_path / "user_tests"
    user_tests.mkdir()
    (user_tests / "test_user.py").write_text(
        "import requests\n"
        "def test_emulator(sestek_connection):\n"
        "    r = requests.post(sestek_connection.identity_url + '/connect/token', data={\n"
        "        'grant_type': 'client_credentials', 'client_id': sestek_connection.train_client[0],\n"
        "        'client_secret': sestek_connection.train_client[1]})\n"
        "    assert r.status_code == 200\n"
    )
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(user_tests)],
        env=env,
        capture_output=True,
        text=True,
        cwd=user_tests,
    )
    assert result.returncode == 0, result.stdout + result.stderr
