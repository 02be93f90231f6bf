"""
A bad ``--log-level`` or a ``--ready-file`` in a folder that does not exist is refused like every other bad
argument (argparse's message, exit code 2), not with a traceback after the server started.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.testing.attack.test_cli_port import REPO, _env


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_sestek.testing", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("level", ["bogus", "5", ""])
def test_cli_refuses_an_unknown_log_level(level: str) -> None:
    result = _run("--log-level", level)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--log-level" in result.stderr


def test_cli_accepts_a_log_level_in_any_case(tmp_path: Path) -> None:
    ready = tmp_path / "url"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--log-level", "info", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        assert ready.read_text().strip().startswith("http://127.0.0.1:")
    finally:
        process.terminate()
        process.wait(20)


def test_cli_refuses_a_ready_file_in_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "url"
    result = _run("--ready-file", str(missing))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--ready-file" in result.stderr and "no-such-folder" in result.stderr
