"""
TLS: the emulator served over HTTPS with a self-signed certificate (made with the ``openssl`` CLI). Rejected by
default, with a message that says what to do; accepted with the connection extra ``verify`` set to that CA
file, end to end (sync and deferrable); a different CA or a certificate for another host is still rejected.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekTransportError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("fast_retries")


def _self_signed(directory: Path, name: str, san: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        f"-subj /CN=sestek-emulator-test -addext subjectAltName={san} -keyout {key} -out {cert}"
    )
    subprocess.run(command.split(), check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    return {
        "loopback": _self_signed(directory, "loopback", "IP:127.0.0.1"),
        "other-ca": _self_signed(directory, "other", "IP:127.0.0.1"),
        "other-host": _self_signed(directory, "elsewhere", "DNS:ai.example.com"),
    }


@pytest.fixture
def https_emulator(certificates: dict[str, tuple[Path, Path]]) -> Iterator[Callable[[str], SestekEmulator]]:
    started: list[SestekEmulator] = []

    def start(which: str = "loopback") -> SestekEmulator:
        cert, key = certificates[which]
        emu = SestekEmulator(certfile=cert, keyfile=key, token_prefix="emu-tok-").start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def _use(monkeypatch: pytest.MonkeyPatch, emu: SestekEmulator, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu, **extra))


def _token(in_trigger: bool) -> str:
    hook = SestekHook(retry_limit=0)
    return asyncio.run(hook.aget_token()) if in_trigger else hook.get_token()


@pytest.mark.parametrize("in_trigger", [False, True], ids=["sync", "async"])
def test_self_signed_is_rejected_by_default(
    https_emulator: Callable[[str], SestekEmulator], monkeypatch: pytest.MonkeyPatch, in_trigger: bool
) -> None:
    emu = https_emulator("loopback")
    assert emu.url.startswith("https://127.0.0.1:")
    _use(monkeypatch, emu)
    with pytest.raises(SestekTransportError) as info:
        _token(in_trigger)
    text = str(info.value)
    assert text.startswith(f"TLS error talking to {emu.url}/connect/token")
    assert "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text, text
    assert "Set the connection extra 'verify' to the CA bundle path" in text
    assert info.value.maybe_sent is False  # nothing reached the server: safe to retry after fixing the setting
    assert emu.requests == []  # the handshake failed: no HTTP request was ever read


@pytest.mark.parametrize("in_trigger", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("served", "reason"),
    [("other-ca", "certificate verify failed"), ("other-host", "IP address mismatch")],
    ids=["other-ca", "other-host"],
)
def test_the_wrong_certificate_is_rejected_even_with_verify(
    https_emulator: Callable[[str], SestekEmulator],
    certificates: dict[str, tuple[Path, Path]],
    monkeypatch: pytest.MonkeyPatch,
    served: str,
    reason: str,
    in_trigger: bool,
) -> None:
    emu = https_emulator(served)
    trusted = certificates["loopback"][0] if served == "other-ca" else certificates[served][0]
    _use(monkeypatch, emu, verify=str(trusted))
    with pytest.raises(SestekTransportError) as info:
        _token(in_trigger)
    assert "TLS error talking to" in str(info.value)
    assert reason.lower() in str(info.value).lower(), str(info.value)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_accepted_with_verify_set_to_the_ca_file(
    https_emulator: Callable[[str], SestekEmulator],
    certificates: dict[str, tuple[Path, Path]],
    monkeypatch: pytest.MonkeyPatch,
    faq: str,
    deferrable: bool,
) -> None:
    emu = https_emulator("loopback")
    _use(monkeypatch, emu, verify=str(certificates["loopback"][0]))

    result = run_task(
        lambda: SestekTrainOperator(
            task_id="under_test",
            model_id="tls-bot",
            project_name="TLS",
            data_files=[faq],
            deferrable=deferrable,
            poll_interval=0.05,
        )
    )

    assert result.state == "success", result
    assert emu.counters["trainings_created"] == 1
    assert emu.trainings["tls-bot"].inference_status == "Running"
    assert {r.endpoint for r in emu.requests} >= {"token", "train", "progress"}


def test_verify_false_is_honoured(https_emulator: Callable[[str], SestekEmulator], monkeypatch: Any) -> None:
    emu = https_emulator("loopback")
    _use(monkeypatch, emu, verify="false")
    from airflow_provider_sestek.hooks.sestek import clear_token_cache

    assert SestekHook().get_token().startswith("emu-tok-")
    clear_token_cache()
    assert asyncio.run(SestekHook().aget_token()).startswith("emu-tok-")
    assert len([r for r in emu.requests if r.endpoint == "token"]) == 2
    assert json.loads(connection_json(emu, verify="false"))["extra"]["verify"] == "false"
