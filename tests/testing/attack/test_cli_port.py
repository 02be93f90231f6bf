"""
An out-of-range port is refused like every other bad argument, not with a traceback.

Attack on the emulator through its public interface (the CLI as a process, the documented API); no mocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_sestek.testing import SestekEmulator

REPO = Path(__file__).resolve().parents[3]


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.parametrize("port", ["-1", "65536", "99999"])
def test_cli_refuses_an_out_of_range_port_cleanly(port: str) -> None:
    # A port in use or a missing certificate ends with "failed to start" and exit code 2; a port that
    # cannot exist crashed with an OverflowError traceback from inside the event loop and exit code 1.
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", port],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "port" in result.stderr


@pytest.mark.parametrize("port", [-1, 65536])
def test_constructor_refuses_an_out_of_range_port(port: int) -> None:
    # Like every other bad constructor argument: ValueError before anything starts.
    with pytest.raises(ValueError, match="port"):
        SestekEmulator(port=port)
