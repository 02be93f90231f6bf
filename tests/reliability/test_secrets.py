"""
Secrets never leak, checked without the log masker's help (``dag.test()`` does not mask its console output, so
anything the provider printed would show): task output, XCom, trigger kwargs, the serialized DAG, the reprs of
the operator, trigger, hook and config objects, a secret given through ``default_args``, and the texts (with
tracebacks) of the exceptions users see. The same search on a real Airflow (logs, metadata DB) is in
``tests/real_airflow``.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator, SestekTrainOperator
from airflow_provider_sestek.testing import Fault, SestekEmulator
from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger
from tests.conftest import connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db", "fast_retries")

TRAIN_SECRET = "SECRET-train-9f3a"
INFERENCE_SECRET = "SECRET-infer-77b1"
CALLBACK_SECRET = "SECRET-callback-c0de"
TOKEN_PREFIX = "TOKEN-leak-"
#: ``callback_client_secret`` given through a DAG's ``default_args`` (README: "not serialized").
DEFAULT_ARGS_SECRET = "SECRET-default-args"
NEEDLES = (TRAIN_SECRET, INFERENCE_SECRET, CALLBACK_SECRET, TOKEN_PREFIX)


def leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


@pytest.fixture
def secret_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[SestekEmulator]:
    """An emulator whose clients have the distinctive secrets and whose tokens start with TOKEN-leak-."""
    with SestekEmulator(
        token_prefix=TOKEN_PREFIX,
        clients={"train-client": TRAIN_SECRET},
        inference_clients={"inference-client": INFERENCE_SECRET},
    ) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
        monkeypatch.setenv(
            "AIRFLOW_CONN_SESTEK_CALLBACK",
            json.dumps(
                {
                    "conn_type": "http",
                    "host": f"{emu.url}/callback-receiver",
                    "login": "callback-client",
                    "password": CALLBACK_SECRET,
                    "extra": {"identity_url": emu.identity_url},
                }
            ),
        )
        yield emu


def _train(faq: str, **kwargs: Any) -> SestekTrainOperator:
    args: dict[str, Any] = {
        "task_id": "under_test",
        "model_id": "secret-bot",
        "project_name": "Secrets",
        "data_files": [faq],
        "callback_conn_id": "sestek_callback",
        "poll_interval": 0.05,
    }
    args.update(kwargs)
    return SestekTrainOperator(**args)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_training_prints_and_stores_no_secret(
    secret_emulator: SestekEmulator, faq: str, deferrable: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_task(lambda: _train(faq, deferrable=deferrable))
    out = "".join(capsys.readouterr())

    assert result.state == "success", result
    # The secrets were used: the callback credentials reached Sestek, tokens were issued and sent.
    (train,) = [r for r in secret_emulator.requests if r.endpoint == "train"]
    assert train.form["callbackClientSecret"] == [secret_emulator.redacted(CALLBACK_SECRET)]
    assert train.headers["Authorization"].startswith("Bearer <redacted:")  # a token was sent (and not recorded)
    assert secret_emulator.counters["token_requests"] >= 1
    assert "Obtained a Sestek training token" in out  # the output searched is the task's own log
    assert leaks(out) == []
    assert leaks(json.dumps(result.xcom, default=str)) == []


def test_a_refused_secret_is_not_repeated_in_the_error(
    secret_emulator: SestekEmulator, faq: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A wrong secret that still contains the distinctive value: if the error echoed it, the search finds it.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_DEFAULT",
        json.dumps(
            {
                "conn_type": "sestek",
                "host": secret_emulator.url,
                "login": "train-client",
                "password": TRAIN_SECRET + "-revoked",
            }
        ),
    )
    result = run_task(lambda: _train(faq))
    out = "".join(capsys.readouterr())
    assert result.task_states["under_test"] == "failed"
    assert "HTTP 401 invalid_client" in out and "Check the Client ID and Client Secret" in out
    assert leaks(out) == []
    assert secret_emulator.counters["trainings_created"] == 0


def test_ask_uses_the_inference_secret_and_prints_none(
    secret_emulator: SestekEmulator, faq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    SestekHook().submit_training("secret-bot", "Secrets", data_files=[faq])
    for _ in range(12):
        SestekHook().get_training_progress("secret-bot")  # polling publishes the model
    result = run_task(
        lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="secret-bot", query="Hours?")
    )
    unknown = run_task(lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="nobody", query="Hi?"))
    out = "".join(capsys.readouterr())
    assert result.state == "success" and unknown.task_states["under_test"] == "failed"
    assert "Obtained a Sestek inference token" in out and "is not published" in out
    assert leaks(out) == []


def test_reprs_show_no_secret(secret_emulator: SestekEmulator, faq: str) -> None:
    operator = _train(
        faq,
        callback_conn_id=None,
        callback_address="https://cb.example.com",
        callback_client_id="cb",
        callback_identity_address="https://id.example.com",
        callback_client_secret=CALLBACK_SECRET,
    )
    hook = SestekHook()
    hook.get_token("training")
    hook.get_token("inference")
    config = hook.config
    request = operator.hook.prepare_training("secret-bot", "Secrets", [faq], callback=operator._callback())
    trigger = SestekTrainingTrigger("secret-bot", poll_interval=5, end_time=1_900_000_000.0)
    from airflow_provider_sestek.hooks.sestek import TOKEN_CACHE

    tokens = [TOKEN_CACHE.get(config.token_key(kind)) for kind in ("training", "inference")]
    assert all(token is not None and token.access_token.startswith(TOKEN_PREFIX) for token in tokens)
    shown = [
        repr(operator),
        str(operator),
        repr(hook),
        str(hook),
        repr(config),
        repr(request),
        repr(trigger),
        repr(trigger.serialize()),
        repr(request.callback),
        *map(repr, tokens),
    ]
    for text in shown:
        assert leaks(text) == [], text
    assert config.client_secret == TRAIN_SECRET  # the values are there, just not shown


def test_serialized_dag_and_rendered_fields_hold_no_secret(secret_emulator: SestekEmulator, faq: str) -> None:
    """Even a secret passed as an argument (not recommended: use callback_conn_id) stays out of the DAG."""
    from airflow.providers.common.compat.sdk import DAG

    try:
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:  # Airflow 2
        from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization

    with DAG("secrets_dag", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        operator = _train(
            faq,
            callback_conn_id=None,
            callback_address="https://cb.example.com",
            callback_identity_address="https://id.example.com",
            callback_client_id="cb",
            callback_client_secret=CALLBACK_SECRET,
        )
    serialized = json.dumps(DagSerialization.to_dict(dag), default=str)
    assert "secret-bot" in serialized  # what is searched is the operator
    assert leaks(serialized) == []
    assert "callback_client_secret" not in operator.template_fields
    rendered = {name: getattr(operator, name) for name in operator.template_fields}
    assert leaks(json.dumps(rendered, default=str)) == []


def _error_texts(exc: BaseException) -> str:
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    "fault",
    [
        Fault(endpoint="token", status=401, body="openiddict", message="The client secret is invalid."),
        Fault(endpoint="token", status=400, body="openiddict"),
        Fault(endpoint="progress", status=401, body="empty", count=2),
        Fault(endpoint="progress", status=403, body="empty"),
        Fault(endpoint="progress", status=500, body="html", count=None),
        Fault(endpoint="progress", kind="drop", count=None),
        Fault(endpoint="progress", kind="malformed", count=None),
    ],
    ids=["token-401", "token-400", "api-401", "api-403", "html-500", "drop", "malformed"],
)
def test_exception_texts_hold_no_secret(secret_emulator: SestekEmulator, fault: Fault) -> None:
    secret_emulator.add_fault(fault)
    with pytest.raises(SestekError) as info:
        SestekHook(retry_limit=1).get_training_progress("secret-bot")
    assert leaks(_error_texts(info.value)) == [], _error_texts(info.value)


def test_validation_errors_hold_no_secret(faq: str) -> None:
    hook = SestekHook()
    bad = [
        api.CallbackConfig("not a url", "https://id.example.com", "cb", CALLBACK_SECRET),
        api.CallbackConfig("https://cb.example.com", "ftp://id", "cb", CALLBACK_SECRET),
        api.CallbackConfig("https://cb.example.com", None, None, CALLBACK_SECRET),
        api.CallbackConfig("https://cb.example.com", None, "cb", CALLBACK_SECRET),
    ]
    for callback in bad:
        with pytest.raises(SestekError) as info:
            hook.prepare_training("secret-bot", "Secrets", [faq], callback=callback)
        assert leaks(_error_texts(info.value)) == [], _error_texts(info.value)


_DEBUG_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_sestek.operators.sestek import SestekTrainOperator

with DAG("debug_secrets", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    SestekTrainOperator(task_id="sync", model_id="sync-bot", project_name="P", data_files=[FAQ],
                        callback_conn_id="sestek_callback", poll_interval=0.05)
    SestekTrainOperator(task_id="deferred", model_id="deferred-bot", project_name="P", data_files=[FAQ],
                        callback_address="https://hooks.example.com/x", callback_client_id="cb",
                        callback_identity_address="https://id.example.com",
                        callback_client_secret=INLINE, deferrable=True, poll_interval=0.05)
"""

_DEBUG_TEST = """
import json, os, runpy
import pytest

@pytest.mark.sestek_emulator(clients={"train-client": TRAIN}, token_prefix=TOKEN)
def test_run(sestek_connection, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_CALLBACK", json.dumps(
        {"conn_type": "http", "host": "https://hooks.example.com/cb", "login": "cb-id", "password": CALLBACK,
         "extra": {"identity_url": "https://id.example.com"}}))
    dag = runpy.run_path(os.environ["DEBUG_DAG"])["dag"]
    run = dag.test()
    print("RUN STATE", run.state)
"""


def test_a_training_at_debug_level_prints_no_secret(tmp_path: Any, faq: str) -> None:
    """
    At DEBUG (set for the whole process, as a user does), the in-process supervisor of ``dag.test()`` logs
    every request a task sends it, MaskSecret included, to an output it does not mask: the tokens and the
    callback secrets the provider registers, sync and deferred, must not show there.
    """
    import os
    import subprocess
    import sys

    names = {"FAQ": faq, "INLINE": CALLBACK_SECRET + "-inline", "TRAIN": TRAIN_SECRET, "TOKEN": TOKEN_PREFIX}
    names["CALLBACK"] = CALLBACK_SECRET
    prelude = "".join(f"{key} = {value!r}\n" for key, value in names.items())
    (tmp_path / "debug_dag.py").write_text(prelude + _DEBUG_DAG)
    (tmp_path / "test_debug_run.py").write_text(prelude + _DEBUG_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_XDIST"))}
    env.update(AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG", DEBUG_DAG=str(tmp_path / "debug_dag.py"))
    plugins = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", *plugins, "test_debug_run.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert "RUN STATE success" in out and "1 passed" in out, out[-3000:]
    lines = out.splitlines()
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        assert any("Sending request" in line for line in lines)  # the DEBUG output was captured
        # Airflow 3 itself sends each connection's password and extra that way when a task reads a connection,
        # and prints them: its own lines. What the provider registers (tokens, an inline secret) is not there.
        own = (f"MaskSecret(value={TRAIN_SECRET!r}", f"MaskSecret(value={CALLBACK_SECRET!r}", "MaskSecret(value={")
        lines = [line for line in lines if not any(text in line for text in (*own, "MaskSecret(value='{"))]
    assert [line[:300] for line in lines if leaks(line)] == []


def _serialized(dag: Any) -> str:
    try:
        from airflow.serialization.serialized_objects import DagSerialization

        return json.dumps(DagSerialization.to_dict(dag), default=str)
    except ImportError:  # Airflow 2.11
        from airflow.serialization.serialized_objects import SerializedDAG

        return json.dumps(SerializedDAG.to_dict(dag), default=str)


@pytest.mark.parametrize("mapped", [False, True], ids=["plain", "mapped"])
def test_secret_through_dag_default_args_is_refused_or_not_serialized(mapped: bool) -> None:
    """
    ``default_args`` feed operator arguments like ``partial()`` does, and the serialized DAG stores them in
    full: the secret given there must be refused (as in ``partial()``) or kept out of the serialized form.
    """
    from airflow.providers.common.compat.sdk import DAG

    try:
        with DAG(
            "secret_defaults",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            default_args={
                "callback_client_secret": DEFAULT_ARGS_SECRET,
                "callback_address": "https://cb.example.com/hook",
            },
        ) as dag:
            if mapped:
                SestekTrainOperator.partial(
                    task_id="t", project_name="p", data_urls=["https://docs.example.com/faq.txt"]
                ).expand(model_id=["a", "b"])
            else:
                SestekTrainOperator(
                    task_id="t", model_id="a", project_name="p", data_urls=["https://docs.example.com/faq.txt"]
                )
    except TypeError as refused:
        assert DEFAULT_ARGS_SECRET not in str(refused)
        return
    assert DEFAULT_ARGS_SECRET not in _serialized(dag)
