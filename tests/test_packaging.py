"""The built sdist and wheel: what PyPI would show (metadata, licence) and that the wheel works on its own."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built once for the module: ``(sdist, wheel)``."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([UV, "build", "--wheel", "--sdist", "-o", str(out), str(REPO)], check=True, capture_output=True)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return sdist, wheel


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


@pytest.mark.slow
def test_distributions_pass_twine_check_strict(dist: tuple[Path, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


@pytest.mark.slow
def test_licence_ships_in_both_distributions(dist: tuple[Path, Path]) -> None:
    sdist, wheel = dist
    licence = (REPO / "LICENSE").read_text()
    assert licence.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in licence
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(name).decode() == licence
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        (name,) = [n for n in names if n.count("/") == 1 and n.endswith("/LICENSE")]
        member = archive.extractfile(name)
        assert member is not None and member.read().decode() == licence


@pytest.mark.slow
def test_wheel_metadata(dist: tuple[Path, Path]) -> None:
    meta = _metadata(dist[1])
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"

    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL", []))
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}, urls
    assert all(url.startswith("https://github.com/sestek/airflow-provider-sestek") for url in urls.values()), urls

    # Only the Python the suite runs on is claimed.
    classifiers = meta.get_all("Classifier", [])
    versions = [c for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == ["Programming Language :: Python :: 3.11"], classifiers
    assert "Framework :: Apache Airflow :: Provider" in classifiers

    # The developers' tools are a dependency group (PEP 735), not a user-visible extra.
    assert meta.get_all("Provides-Extra") == ["testing"]
    requires = meta.get_all("Requires-Dist", [])
    dev_group = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    dev_only = {_requirement_name(r) for r in dev_group} - {"pytest"}
    assert {"ruff", "mypy", "moto", "hypothesis", "twine", "pytest-timeout"} <= dev_only
    leaked = sorted({_requirement_name(r) for r in requires} & dev_only)
    assert not leaked, leaked
    extras = [r for r in requires if "extra ==" in r]
    assert [_requirement_name(r) for r in extras] == ["pytest"], extras


@pytest.mark.slow
def test_wheel_installs_and_is_discovered(tmp_path: Path, dist: tuple[Path, Path]) -> None:
    import airflow

    sdist, wheel = dist
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
