"""SestekTrainingSensor in poke and deferrable mode, through dag.test()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.sensors.sestek import SestekTrainingSensor
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db")


def submit(tmp_path: Path, model_id: str = "faq-bot") -> None:
    data = tmp_path / "faq.txt"
    data.write_text("Q: Hours?\nA: 9 to 17.\n")
    SestekHook().submit_training(model_id, "FAQ", data_files=[str(data)])


def sensor(**kwargs: Any) -> SestekTrainingSensor:
    return SestekTrainingSensor(
        **{"task_id": "under_test", "model_id": "faq-bot", "poke_interval": 0.05, "timeout": 30, **kwargs}
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_waits_until_published(sestek_conn: SestekEmulator, tmp_path: Path, deferrable: bool) -> None:
    submit(tmp_path)
    result = run_task(lambda: sensor(deferrable=deferrable))
    assert result.state == "success", result
    assert result.value == {
        "model_id": "faq-bot",
        "training_status": "Completed",
        "inference_status": "Running",
        "percent": 100,
    }
    assert sestek_conn.trainings["faq-bot"].inference_status == "Running"
    assert sestek_conn.counters["trainings_created"] == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_timeout_and_soft_fail(emulator_factory, monkeypatch, tmp_path: Path, deferrable: bool, capsys) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=3600)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    submit(tmp_path)
    result = run_task(lambda: sensor(deferrable=deferrable, timeout=0.5))
    assert result.task_states["under_test"] == "failed"
    assert "AirflowSensorTimeout" in "".join(capsys.readouterr())
    result = run_task(lambda: sensor(deferrable=deferrable, timeout=0.5, soft_fail=True))
    assert result.task_states["under_test"] == "skipped"


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_failed_training(emulator_factory, monkeypatch, tmp_path: Path, deferrable: bool, capsys) -> None:
    emu = emulator_factory(fail_models=("faq-bot",))
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    submit(tmp_path)
    result = run_task(lambda: sensor(deferrable=deferrable))
    assert result.task_states["under_test"] == "failed"
    assert "training of model 'faq-bot' failed" in "".join(capsys.readouterr())


def test_unknown_model_gives_up(sestek_conn: SestekEmulator, capsys) -> None:
    result = run_task(lambda: sensor(model_id="never-trained", max_consecutive_failures=3))
    assert result.task_states["under_test"] == "failed"
    assert "failed 3 times in a row" in "".join(capsys.readouterr())


def test_bad_model_id_before_any_request(sestek_conn: SestekEmulator, capsys) -> None:
    result = run_task(lambda: sensor(model_id="Not Valid", deferrable=True))
    assert result.task_states["under_test"] == "failed"
    assert "Invalid model_id = 'Not Valid'" in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_successful_poll_resets_the_failure_count_in_every_mode(
    sestek_conn: SestekEmulator, tmp_path: Path, mode: str
) -> None:
    """
    404, Training, 404, 404, Training, 404, 404, then the real lifecycle: never three failures in a row, so
    ``max_consecutive_failures=3`` holds in every mode (the deferrable one used to hand the trigger a lower limit).
    """
    import json

    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    from airflow_provider_sestek.testing import Fault

    if mode == "reschedule" and AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        pytest.skip(
            "Airflow 3.0's dag.test() fails the second poke of every reschedule-mode sensor (a PythonSensor too): "
            "its in-process supervisor answers the first reschedule date as a string"
        )
    submit(tmp_path)
    training = json.dumps({"percent": 50, "trainingStatus": "Training", "inferenceStatus": None})

    def not_found() -> Fault:
        return Fault(endpoint="progress", kind="status", status=404, body="abp", count=1)

    def running() -> Fault:
        return Fault(endpoint="progress", kind="raw", raw_body=training, content_type="application/json", count=1)

    for fault in (not_found(), running(), not_found(), not_found(), running(), not_found(), not_found()):
        sestek_conn.add_fault(fault)
    result = run_task(
        lambda: sensor(
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            max_consecutive_failures=3,
            timeout=300,  # only a guard against a hang: each reschedule is a round of dag.test()'s loop
        )
    )
    assert result.task_states["under_test"] == "success", result


@pytest.mark.parametrize("limit", [0, -3, "x", 1.5, True])
def test_an_invalid_failure_limit_fails_before_any_request(sestek_conn: SestekEmulator, limit: object) -> None:
    from airflow_provider_sestek.exceptions import SestekValidationError

    with pytest.raises(SestekValidationError, match=r"Invalid max_consecutive_failures = .*at least 1"):
        sensor(max_consecutive_failures=limit).execute({})  # type: ignore[arg-type]
    assert sestek_conn.requests == []
