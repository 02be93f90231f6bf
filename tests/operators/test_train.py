"""SestekTrainOperator end to end: real DAG runs (dag.test()) against the emulator over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_task, without_connection_echo

pytestmark = pytest.mark.usefixtures("airflow_db")


def train(faq: str, **kwargs: Any) -> SestekTrainOperator:
    args: dict[str, Any] = {
        "task_id": "under_test",
        "model_id": "faq-bot",
        "project_name": "FAQ",
        "data_files": [faq],
        "poll_interval": 0.05,
        "deferrable": False,
    }
    args.update(kwargs)
    return SestekTrainOperator(**args)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_trains_and_waits_until_published(sestek_conn: SestekEmulator, faq: str, deferrable: bool) -> None:
    result = run_task(lambda: train(faq, deferrable=deferrable))
    assert result.state == "success", result
    assert result.value == {
        "model_id": "faq-bot",
        "training_status": "Completed",
        "inference_status": "Running",
        "percent": 100,
    }
    assert result.xcom["model_id"] == "faq-bot"
    assert sestek_conn.counters["trainings_created"] == 1
    assert sestek_conn.trainings["faq-bot"].inference_status == "Running"


def test_without_inference_wait_stops_at_completed(sestek_conn: SestekEmulator, faq: str) -> None:
    result = run_task(lambda: train(faq, wait_for_inference=False))
    assert result.state == "success"
    assert result.value["training_status"] == "Completed" and result.value["inference_status"] is None


def test_no_wait_returns_right_after_submit(sestek_conn: SestekEmulator, faq: str) -> None:
    result = run_task(lambda: train(faq, wait_for_completion=False))
    assert result.state == "success"
    assert result.value["training_status"] == "Initialized"
    assert result.xcom["model_id"] == "faq-bot"
    assert sestek_conn.trainings["faq-bot"].status == "Initialized"


def test_templated_arguments(sestek_conn: SestekEmulator, faq: str) -> None:
    result = run_task(
        lambda: train(
            faq,
            model_id="{{ params.model }}",
            project_name="{{ dag.dag_id }}",
            data_files="{{ params.file }}",
            data_urls="https://example.com/{{ params.model }}.txt",
            wait_for_completion=False,
        ),
        dag_kwargs={"params": {"model": "templated-bot", "file": faq}},
    )
    assert result.state == "success"
    (request,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert request.form["modelId"] == ["templated-bot"]
    assert request.form["dataUrls"] == ["https://example.com/templated-bot.txt"]
    assert request.files[0].filename == "faq.txt"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_failed_training(emulator_factory, monkeypatch: pytest.MonkeyPatch, faq: str, deferrable: bool, capsys) -> None:
    emu = emulator_factory(fail_models=("faq-bot",))
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    result = run_task(lambda: train(faq, deferrable=deferrable))
    assert result.task_states["under_test"] == "failed"
    out = capsys.readouterr()
    assert "SestekTrainingFailed" in out.out + out.err
    assert "training of model 'faq-bot' failed" in out.out + out.err


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_timeout_names_last_status(emulator_factory, monkeypatch, faq: str, deferrable: bool, capsys) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=3600)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    # Long enough for one poll to fit before the deadline on a loaded CI machine (0.5 s did not, once).
    result = run_task(lambda: train(faq, deferrable=deferrable, timeout=2.5))
    assert result.task_states["under_test"] == "failed"
    text = "".join(capsys.readouterr())
    assert "Timed out waiting for Sestek model 'faq-bot'" in text
    assert "last status: Initialized 0%" in text and "no cancel endpoint" in text
    assert emu.counters["trainings_created"] == 1


def test_attaches_to_running_training(sestek_conn: SestekEmulator, faq: str, capsys) -> None:
    from airflow_provider_sestek.hooks.sestek import SestekHook

    SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq])
    result = run_task(lambda: train(faq))
    assert result.state == "success"
    assert sestek_conn.counters["trainings_created"] == 1
    assert "instead of submitting a second one" in "".join(capsys.readouterr())


def test_retrains_a_finished_model(sestek_conn: SestekEmulator, faq: str) -> None:
    assert run_task(lambda: train(faq)).state == "success"
    assert run_task(lambda: train(faq)).state == "success"
    assert sestek_conn.counters["trainings_created"] == 2


def test_attaches_when_submit_connection_drops_after_create(sestek_conn: SestekEmulator, faq: str) -> None:
    sestek_conn.add_fault(Fault(endpoint="train", kind="drop", when="after", count=1))
    result = run_task(lambda: train(faq))
    assert result.state == "success"
    assert sestek_conn.counters["trainings_created"] == 1


def test_resubmits_when_dropped_submit_created_nothing(sestek_conn: SestekEmulator, faq: str) -> None:
    sestek_conn.add_fault(Fault(endpoint="train", kind="status", status=502, count=1))
    result = run_task(lambda: train(faq))
    assert result.state == "success"
    assert sestek_conn.counters["trainings_created"] == 1
    assert len([r for r in sestek_conn.requests if r.endpoint == "train"]) == 2


def test_in_progress_answer_attaches(sestek_conn: SestekEmulator, faq: str) -> None:
    from airflow_provider_sestek.hooks.sestek import SestekHook

    SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq])
    # The pre-submit look misses the running training (as in a race with another submitter) ...
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=404, body="abp", count=1))
    result = run_task(lambda: train(faq))
    # ... then the server's "still in progress" answer makes the task attach instead of failing.
    assert result.state == "success"
    assert sestek_conn.counters["trainings_created"] == 1


@pytest.mark.usefixtures("fast_retries")  # six 500s at the hook's 1 s doubling backoff are half a minute
def test_retry_after_crash_attaches(sestek_conn: SestekEmulator, faq: str) -> None:
    # First try: submitted, then every poll fails until the task gives up (as if the worker died).
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=500, count=6))
    result = run_task(lambda: train(faq, retries=1, retry_delay=0, max_consecutive_failures=2))
    assert result.state == "success", result
    assert sestek_conn.counters["trainings_created"] == 1


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model_id": "FAQ_Bot"}, "Invalid model_id = 'FAQ_Bot'"),
        ({"project_name": ""}, "Invalid project_name"),
        ({"data_files": None}, "give at least one of data_files or data_urls"),
        ({"data_files": ["/nope/missing.txt"]}, "data_files[0] = '/nope/missing.txt': file does not exist"),
        ({"data_urls": "file:///etc/passwd", "data_files": None}, "data_urls[0]"),
        ({"poll_interval": 0}, "Invalid poll_interval = 0"),
        ({"timeout": -5}, "Invalid timeout = -5"),
        ({"callback_address": "not-a-url"}, "Invalid callback_address"),
        ({"callback_client_id": "cb"}, "callback_address"),
    ],
)
def test_bad_input_fails_before_any_request(sestek_conn: SestekEmulator, faq: str, kwargs, needle, capsys) -> None:
    result = run_task(lambda: train(faq, **kwargs))
    assert result.task_states["under_test"] == "failed"
    assert needle in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


def test_unknown_connection_fails_before_any_request(sestek_conn: SestekEmulator, faq: str, capsys) -> None:
    result = run_task(lambda: train(faq, sestek_conn_id="no_such_conn"))
    assert result.task_states["under_test"] == "failed"
    assert "no_such_conn" in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


def test_callback_connection_and_secret_handling(
    sestek_conn: SestekEmulator, faq: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_CALLBACK",
        json.dumps(
            {
                "conn_type": "http",
                "host": "https://hooks.example.com/sestek",
                "login": "cb-client",
                "password": "cb-SECRET-value-42",
                "extra": {"identity_url": "https://id.example.com"},
            }
        ),
    )
    result = run_task(lambda: train(faq, callback_conn_id="sestek_callback", wait_for_completion=False))
    assert result.state == "success"
    (request,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert request.form["callbackAddress"] == ["https://hooks.example.com/sestek"]
    assert request.form["callbackIdentityAddress"] == ["https://id.example.com"]
    assert request.form["callbackClientId"] == ["cb-client"]
    # Recorded as its marker (the emulator keeps no secret), which proves this secret was sent.
    assert request.form["callbackClientSecret"] == [sestek_conn.redacted("cb-SECRET-value-42")]
    assert "cb-SECRET-value-42" not in without_connection_echo("".join(capsys.readouterr()), "cb-SECRET-value-42")
    assert "callback_client_secret" not in SestekTrainOperator.template_fields


def test_portal_link(emulator: SestekEmulator, faq: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_DEFAULT",
        connection_json(emulator, portal_url="https://portal.example.com/{tenant}/models/{model_id}"),
    )
    result = run_task(lambda: train(faq, wait_for_completion=False))
    assert result.xcom["sestek_portal_url"] == f"https://portal.example.com/{emulator.tenant}/models/faq-bot"


def test_no_portal_link_without_template(sestek_conn: SestekEmulator, faq: str) -> None:
    result = run_task(lambda: train(faq, wait_for_completion=False))
    assert result.xcom["sestek_portal_url"] is None


def test_deferrable_default_comes_from_config(monkeypatch: pytest.MonkeyPatch, faq: str) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    from airflow.providers.common.compat.sdk import conf

    if not conf.getboolean("operators", "default_deferrable"):
        pytest.skip("configuration is cached in this Airflow version")
    op = SestekTrainOperator(task_id="x", model_id="m", project_name="p", data_files=faq)
    assert op.deferrable is True


def test_retry_attaches_to_a_training_that_finished_meanwhile(emulator_factory, monkeypatch, faq: str) -> None:
    """Durable execution (Airflow 3.3 task state store): the retry finds the finished training, no retrain."""
    from datetime import timedelta

    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    emu = emulator_factory(advance="time", seconds_per_step=0.2)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    # Try 1 times out while the training runs on; by try 2 (3 s later) it has completed.
    result = run_task(lambda: train(faq, timeout=0.3, retries=1, retry_delay=timedelta(seconds=3)))
    if AIRFLOW_V_3_3_PLUS:
        assert result.state == "success", result
        assert emu.counters["trainings_created"] == 1
    else:  # no task state store: the finished training is retrained, as documented
        assert emu.counters["trainings_created"] == 2


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_retrain_is_not_done_while_the_previous_training_still_shows(
    sestek_conn: SestekEmulator, faq: str, deferrable: bool
) -> None:
    """
    Right after the POST the progress endpoint may still answer the previous training's Completed/Running (as it
    may answer 404 for a new model): the task waits for the new training instead of succeeding on the old one.
    """
    from airflow_provider_sestek.testing import Fault

    assert run_task(lambda: train(faq)).state == "success"
    old = json.dumps({"percent": 100, "trainingStatus": "Completed", "inferenceStatus": "Running"})
    # One answer for the look before the submit, then two of the previous training after it.
    sestek_conn.add_fault(
        Fault(endpoint="progress", kind="raw", raw_body=old, content_type="application/json", count=3)
    )
    # The window in which a final status is taken for the previous training's is max_consecutive_failures x
    # poll_interval after the submit: 0.5 s by default here, which a loaded machine can spend before the
    # triggerer's first poll. 200 makes it 10 s; the three stale answers still come first.
    result = run_task(lambda: train(faq, deferrable=deferrable, max_consecutive_failures=200))
    assert result.state == "success", result
    training = sestek_conn.trainings["faq-bot"]
    assert sestek_conn.counters["trainings_created"] == 2
    assert (training.status, training.inference_status) == ("Completed", "Running")  # the new one, waited for


@pytest.mark.parametrize("fast", [True, False], ids=["fixture-fast-waits", "real-waits"])
def test_the_looks_after_an_unclear_submit_are_paced_by_the_wait_rule(
    sestek_conn: SestekEmulator, faq: str, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """
    The progress looks that follow a submit of unknown outcome sleep what the wait rule says, so the pytest
    plugin's fast waits shorten them too (they slept the full poll_interval, a minute per look, in tests).
    """
    import airflow_provider_sestek.operators.train as train_module
    from airflow_provider_sestek.testing.pytest_plugin import FAST_WAIT, fast_waits

    if fast:
        fast_waits(monkeypatch)
    slept: list[float] = []
    monkeypatch.setattr(train_module.time, "sleep", slept.append)
    assert train(faq, poll_interval=60)._look(3) is None  # no such training: three looks, two pauses
    assert len(slept) == 2
    assert all(pause <= FAST_WAIT for pause in slept) if fast else all(54 <= pause <= 66 for pause in slept)
    assert [r.endpoint for r in sestek_conn.requests if r.endpoint == "progress"] == ["progress"] * 3
