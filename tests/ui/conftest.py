"""
Browser tests of the connection form: prerequisites, the ``ui`` marker and the servers they drive.

The servers run as subprocesses in their own throwaway ``AIRFLOW_HOME``: the suite-wide home set by
``tests/conftest.py`` belongs to the in-process tests and is never shared with them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._processes import free_port, start_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# `make test-ui` sets this: a missing browser or playwright is then a failure, not a skip.
REQUIRE_ENV = "SESTEK_REQUIRE_UI"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ui: drives the Airflow web UI in headless Chromium (needs /usr/bin/chromium and playwright)"
    )


def airflow_major() -> int:
    """Major version of the Airflow installed next to this interpreter (without importing Airflow)."""
    return int(importlib.metadata.version("apache-airflow").split(".")[0])


@pytest.fixture(scope="session")
def ui_prerequisites() -> None:
    """Skip (or fail under ``SESTEK_REQUIRE_UI=1``) when the browser or playwright is missing."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian package 'chromium')")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the 'playwright' Python package")
    if not missing:
        return
    reason = "UI test needs " + " and ".join(missing) + "; `make test-ui` installs them"
    if os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set)", pytrace=False)
    pytest.skip(reason)


# --- processes -------------------------------------------------------------------------------------


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sestek-ui-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class AirflowUI:
    """A running Airflow web server: its URL, the admin login, its (throwaway) home and major version."""

    url: str
    username: str
    password: str
    home: Path
    major: int


def _airflow_env(home: Path, major: int) -> dict[str, str]:
    # Start from a clean slate: nothing of the suite's Airflow configuration leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    (home / "dags").mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if major >= 3:
        env["AIRFLOW__CORE__AUTH_MANAGER"] = (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        )
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
        env["AIRFLOW__API__WORKERS"] = "1"
    else:
        # Flask-AppBuilder login in the UI; basic auth for the REST API check.
        env["AIRFLOW__API__AUTH_BACKENDS"] = "airflow.api.auth.backend.session,airflow.api.auth.backend.basic_auth"
        env["AIRFLOW__WEBSERVER__SECRET_KEY"] = secrets.token_hex(16)
    return env


def _airflow(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow {args[0]} failed:\n" + done.stdout.decode(errors="replace")[-4000:])


@pytest.fixture(scope="module")
def emulator_url(ui_prerequisites: None, ui_workdir: Path) -> Iterator[str]:
    """The Sestek emulator CLI on a free loopback port (default clients, tenant ``acme``)."""
    ready = ui_workdir / "emulator.url"
    port = free_port()
    server = start_process(
        "Sestek emulator",
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", str(port), "--ready-file", str(ready)],
        {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        ui_workdir / "emulator.log",
    )
    try:
        server.wait_until(ready.exists, 30, "ready file")
        yield ready.read_text().strip()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def airflow_ui(ui_prerequisites: None, ui_workdir: Path) -> Iterator[AirflowUI]:
    """
    The Airflow web server on a free loopback port, connection testing enabled.

    Airflow 3: ``airflow api-server``, simple auth manager (its generated admin password).
    Airflow 2: ``airflow webserver`` (Flask-AppBuilder), an ``admin`` user created here.
    """
    major = airflow_major()
    home = ui_workdir / "airflow-home"
    env = _airflow_env(home, major)
    _airflow(env, "db", "migrate")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if major >= 3:
        cmd = ["api-server", "--host", "127.0.0.1", "--port", str(port)]
        health = f"{url}/api/v2/monitor/health"
        password = ""
    else:
        password = secrets.token_urlsafe(12)
        # "--password=" keeps argparse from reading a random password that starts with "-" as an option.
        user = ["-u", "admin", f"--password={password}", "-r", "Admin", "-e", "admin@example.com"]
        user += ["-f", "Admin", "-l", "User"]
        _airflow(env, "users", "create", *user)
        cmd = ["webserver", "--hostname", "127.0.0.1", "--port", str(port), "--workers", "1"]
        health = f"{url}/health"
    server = start_process(f"airflow {cmd[0]}", [sys.executable, "-m", "airflow", *cmd], env, ui_workdir / "web.log")
    try:
        server.wait_until(lambda: _http_ok(health), 120, "health endpoint answering")
        if major >= 3:
            passwords = home / "simple_auth_manager_passwords.json.generated"
            server.wait_until(passwords.exists, 30, "generated admin password")
            password = json.loads(passwords.read_text())["admin"]
        yield AirflowUI(url=url, username="admin", password=password, home=home, major=major)
    finally:
        server.stop()
