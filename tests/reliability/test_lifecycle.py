"""
Task lifecycle (issue 10), through ``dag.test()`` against the emulator over HTTP:

- clearing a task that succeeded retrains with the current data; a retry attaches or collects;
- a submit whose outcome is unknown ends in attaching or in exactly one new training, even when the
  progress endpoint answers 404 for a while and a second submit is answered "still in progress";
- the sensor's failure limit holds in ``reschedule`` mode;
- ``defer(timeout=...)`` is derived from the absolute deadline, for the operator and the sensor;
- a secret is refused in ``partial()``/``expand()`` and absent from a mapped DAG's serialized form;
- inference answers are matched one to one, ``chat_history`` is checked before any request;
- no ``user:password@`` in lineage.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator, SestekTrainOperator
from airflow_provider_sestek.sensors.sestek import SestekTrainingSensor
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import fails_once, run_dag_file, run_task
from tests.operators.test_train import train

pytestmark = pytest.mark.usefixtures("airflow_db", "fast_retries")

AIRFLOW_3_3 = __import__("airflow.providers.common.compat.version_compat", fromlist=["x"]).AIRFLOW_V_3_3_PLUS
needs_state_store = pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])


def train_posts(emu: SestekEmulator) -> list[Any]:
    return [r for r in emu.requests if r.endpoint == "train"]


# --- 1. the durable rule ------------------------------------------------------------------------------------


@needs_state_store
@MODES
def test_clear_and_rerun_of_a_succeeded_task_retrains_with_the_changed_file(
    sestek_conn: SestekEmulator, faq: str, deferrable: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run, change the file, clear the task (``clear_task_instances``, as ``airflow tasks clear``), run again."""
    dag_id = f"clear_{int(deferrable)}_{time.time_ns()}"

    def build() -> Any:
        from airflow.providers.common.compat.sdk import DAG

        with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
            train(faq, deferrable=deferrable)
        return dag

    dag_run = run_dag_file(dag_id, build)
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success"
    Path(faq).write_text("Q: When are you open?\nA: From 8 to 20, every day.\n")

    assert _clear_and_run_again(build, dag_run.run_id) == "success"

    assert sestek_conn.counters["trainings_created"] == 2
    posts = train_posts(sestek_conn)
    assert len(posts) == 2
    assert posts[1].files[0].sha256 == hashlib.sha256(Path(faq).read_bytes()).hexdigest()
    assert posts[0].files[0].sha256 != posts[1].files[0].sha256
    assert "submitting a new training with the current data" in "".join(capsys.readouterr())


def _clear_and_run_again(build: Any, run_id: str) -> str:
    """Clear ``under_test`` in its DAG run and run it there again, the way ``dag.test()`` runs a task."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    dag = build()

    def ti_query() -> Any:
        return select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == "under_test"
        )

    with create_session() as session:
        clear_task_instances(list(session.scalars(ti_query())), session)
    with create_session() as session:
        ti = session.scalar(ti_query())
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        _run_task(ti=ti, task=dag.task_dict["under_test"], run_triggerer=True)
    with create_session() as session:
        state = session.scalar(ti_query()).state
        return str(getattr(state, "value", state))


@MODES
def test_retry_after_a_crash_mid_wait_attaches(sestek_conn: SestekEmulator, faq: str, deferrable: bool) -> None:
    # Try 1 submits, then every poll fails until it gives up (the task fails mid-wait, as after a crash).
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=500, count=6, when="before"))
    result = run_task(lambda: train(faq, deferrable=deferrable, retries=1, retry_delay=0, max_consecutive_failures=2))
    assert result.state == "success", result
    assert sestek_conn.counters["trainings_created"] == 1
    assert len(train_posts(sestek_conn)) == 1


@needs_state_store
@MODES
def test_retry_after_the_training_finished_returns_its_result(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, faq: str, deferrable: bool, capsys: Any
) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=0.2)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    # Try 1 times out while the training runs on; by try 2 (3 s later) it has completed and been published.
    result = run_task(
        lambda: train(
            faq,
            deferrable=deferrable,
            wait_for_inference=False,
            timeout=0.3,
            retries=1,
            retry_delay=timedelta(seconds=3),
        )
    )
    assert result.state == "success", result
    assert emu.counters["trainings_created"] == 1
    assert result.value["training_status"] == "Completed"
    assert "Job already completed successfully, skipping resubmission" in "".join(capsys.readouterr())


@needs_state_store
def test_durable_false_always_submits(
    sestek_conn: SestekEmulator, faq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Try 1 trains and returns, then fails (its post_execute raises): without the durable rule try 2 trains again."""
    result = run_task(
        lambda: train(faq, durable=False, retries=1, retry_delay=timedelta(seconds=0), post_execute=fails_once())
    )
    assert result.state == "success", result
    assert sestek_conn.counters["trainings_created"] == 2  # the finished training of try 1 is not collected
    assert "task_state_store" not in "".join(capsys.readouterr())


# --- 3. submits of unknown outcome ---------------------------------------------------------------------------


@MODES
def test_lost_submit_answer_then_not_found_attaches(sestek_conn: SestekEmulator, faq: str, deferrable: bool) -> None:
    """The POST creates the training, its answer is lost, and the progress endpoint says 404 for a moment."""
    sestek_conn.add_fault(Fault(endpoint="train", kind="drop", when="after", count=1))
    # The look-up before the submit (a real 404 too) and the first look after it.
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=404, body="abp", count=2))
    result = run_task(lambda: train(faq, deferrable=deferrable))
    assert result.state == "success", result
    assert sestek_conn.counters["trainings_created"] == 1
    assert len(train_posts(sestek_conn)) == 1


def test_second_submit_answered_in_progress_attaches(sestek_conn: SestekEmulator, faq: str) -> None:
    """404 outlasts the looks, so the operator submits again: "still in progress" makes it attach."""
    sestek_conn.add_fault(Fault(endpoint="train", kind="drop", when="after", count=1))
    looks = SestekTrainOperator.unknown_submit_looks
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=404, body="abp", count=1 + looks))
    result = run_task(lambda: train(faq))
    assert result.state == "success", result
    assert sestek_conn.counters["trainings_created"] == 1
    assert len(train_posts(sestek_conn)) == 2
    assert sestek_conn.trainings["faq-bot"].inference_status == "Running"


# --- 4. sensor failures across reschedules ----------------------------------------------------------------------


def test_sensor_failure_limit_holds_in_reschedule_mode(sestek_conn: SestekEmulator, capsys: Any) -> None:
    result = run_task(
        lambda: SestekTrainingSensor(
            task_id="under_test",
            model_id="mistyped-model",
            mode="reschedule",
            poke_interval=0.05,
            timeout=20,
            max_consecutive_failures=3,
        )
    )
    assert result.task_states["under_test"] == "failed"
    assert "failed 3 times in a row" in "".join(capsys.readouterr())
    assert len([r for r in sestek_conn.requests if r.endpoint == "progress"]) == 3


# --- 2. Airflow's own deadline for a deferred wait ----------------------------------------------------------------


def test_deferrable_sensor_defers_with_a_backstop_timeout(sestek_conn: SestekEmulator, faq: str) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq])
    sensor = SestekTrainingSensor(task_id="s", model_id="faq-bot", deferrable=True, poke_interval=5, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    # deadline (600 s) + one poll interval (5 s) + one request deadline (the connection's timeout, 60 s)
    assert deferred.value.timeout is not None
    assert 660 < deferred.value.timeout.total_seconds() <= 665


def test_train_operator_defers_with_a_backstop_timeout(sestek_conn: SestekEmulator, faq: str) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    operator = train(faq, deferrable=True, poll_interval=60, timeout=3600)
    with pytest.raises(TaskDeferred) as deferred:
        operator._defer(time.time() + 3600)
    assert deferred.value.timeout is not None  # deadline + poll interval + the connection's 60 s request deadline
    assert 3600 + 60 + 60 - 5 < deferred.value.timeout.total_seconds() <= 3600 + 60 + 60
    with pytest.raises(TaskDeferred) as forever:
        operator._defer(None)
    assert forever.value.timeout is None


# --- 6. no secret in a mapped DAG ------------------------------------------------------------------------------


SECRET = "SECRET-mapped-5e1f"


def test_partial_and_expand_refuse_the_callback_secret(faq: str) -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG("mapped_refusal", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        with pytest.raises(TypeError, match="callback_conn_id") as refused:
            SestekTrainOperator.partial(
                task_id="t", project_name="p", data_files=[faq], callback_client_secret=SECRET
            ).expand(model_id=["a", "b"])
        assert SECRET not in str(refused.value)
        partial = SestekTrainOperator.partial(task_id="u", project_name="p", data_files=[faq])
        with pytest.raises(TypeError, match="callback_conn_id"):
            partial.expand(model_id=["a"], callback_client_secret=[SECRET])
        with pytest.raises(TypeError, match="callback_conn_id"):
            partial.expand_kwargs([{"model_id": "a", "callback_client_secret": SECRET}])


def test_a_mapped_training_stores_no_secret(sestek_conn: SestekEmulator, faq: str, monkeypatch: Any) -> None:
    """A mapped DAG with the callback through its connection: the serialized_dag table holds no secret."""
    import os

    from airflow.providers.common.compat.sdk import DAG

    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_CALLBACK",
        json.dumps(
            {
                "conn_type": "http",
                "host": "https://cb.example.com/hook",
                "login": "cb",
                "password": SECRET,
                "extra": {"identity_url": "https://id.example.com"},
            }
        ),
    )
    dag_id = f"mapped_{time.time_ns()}"

    def build() -> Any:
        with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
            SestekTrainOperator.partial(
                task_id="train",
                project_name="p",
                data_files=[faq],
                callback_conn_id="sestek_callback",
                poll_interval=0.05,
                wait_for_completion=False,
            ).expand(model_id=["mapped-a", "mapped-b"])
        return dag

    dag_run = run_dag_file(dag_id, build)
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success"
    marker = sestek_conn.redacted(SECRET)  # the emulator records the secret it received as this marker
    assert [p.form["callbackClientSecret"] for p in train_posts(sestek_conn)] == [[marker], [marker]]
    db = Path(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT data, data_compressed FROM serialized_dag WHERE dag_id = ?", (dag_id,)).fetchall()
    texts = [_text(cell) for row in rows for cell in row if cell is not None]
    if not rows:
        # Airflow 2.11's and 3.0's dag.test() write no serialized_dag row: search what serializing it stores.
        from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS
        from airflow.serialization.serialized_objects import SerializedDAG

        assert not AIRFLOW_V_3_1_PLUS, "Airflow 3.1's dag.test() stores the serialized DAG"
        texts = [json.dumps(SerializedDAG.to_dict(build()), default=str)]
    assert any("mapped-a" in text for text in texts)  # what is searched is the mapped DAG
    assert not any(SECRET in text for text in texts)


def _text(cell: Any) -> str:
    import zlib

    if isinstance(cell, bytes):
        try:
            return zlib.decompress(cell).decode()
        except zlib.error:
            return cell.decode("utf-8", "replace")
    return str(cell)


# --- 5. answers and chat_history --------------------------------------------------------------------------------


def _publish(faq: str) -> None:
    hook = SestekHook()
    hook.submit_training("faq-bot", "FAQ", data_files=[faq])
    while not hook.get_training_progress("faq-bot").is_published:
        pass


PAIR = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}]


@pytest.mark.parametrize(
    ("history", "field"),
    [
        (PAIR, "chat_history[0]"),  # a flat list of messages, not a list of pairs
        ({"role": "user", "content": "Hi"}, "chat_history"),
        ("not json", "chat_history"),
        ([[PAIR[1], PAIR[0]]], "chat_history[0][0]"),  # assistant first
        ([[PAIR[0]]], "chat_history[0]"),  # half a pair
    ],
    ids=["flat-list", "dict", "non-json-string", "roles-swapped", "half-pair"],
)
def test_bad_chat_history_fails_before_any_request(
    sestek_conn: SestekEmulator, history: Any, field: str, capsys: Any
) -> None:
    result = run_task(
        lambda: SestekQuestionAnsweringOperator(
            task_id="under_test", model_id="faq-bot", query="When?", chat_history=history
        )
    )
    assert result.task_states["under_test"] == "failed"
    assert f"Invalid {field}" in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


def test_templated_chat_history_is_parsed(sestek_conn: SestekEmulator, faq: str) -> None:
    _publish(faq)
    result = run_task(
        lambda: SestekQuestionAnsweringOperator(
            task_id="under_test", model_id="faq-bot", query="When are you open?", chat_history="{{ params.history }}"
        ),
        dag_kwargs={"params": {"history": json.dumps([PAIR])}},
    )
    assert result.state == "success", result
    (request,) = [r for r in sestek_conn.requests if r.endpoint == "inference"]
    assert request.json["inputs"][0]["chat_history"] == [PAIR]


def test_chat_history_pairs_rules() -> None:
    from airflow_provider_sestek import api

    assert api.chat_history_pairs(None) == [] and api.chat_history_pairs("") == []
    assert api.chat_history_pairs([tuple(PAIR)]) == [PAIR]
    with pytest.raises(SestekValidationError, match=r"chat_history\[0\]\[1\]"):
        api.chat_history_pairs([[PAIR[0], {"role": "assistant", "content": 5}]])


@pytest.mark.parametrize(("questions", "results"), [(3, 0), (3, 5), (1, 2)])
def test_answers_must_match_questions(
    fake_inference: Any, monkeypatch: pytest.MonkeyPatch, questions: int, results: int, capsys: Any
) -> None:
    fake_inference["results"] = [{"answer": f"a{i}"} for i in range(results)]
    result = run_task(
        lambda: SestekQuestionAnsweringOperator(
            task_id="under_test", model_id="faq-bot", queries=[f"q{i}?" for i in range(questions)]
        )
    )
    assert result.task_states["under_test"] == "failed"
    assert f"inference answered {results} result(s) for {questions} question(s)" in "".join(capsys.readouterr())


@pytest.fixture
def fake_inference(monkeypatch: pytest.MonkeyPatch) -> Any:
    """
    A real HTTP server that answers a token and an inference with a chosen number of results (the emulator
    always answers one result per input, as the real API should).
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state: dict[str, Any] = {"results": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/connect/token"):
                body: dict[str, Any] = {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}
            else:
                body = {"result": state["results"]}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_DEFAULT",
        json.dumps(
            {
                "conn_type": "sestek",
                "host": url,
                "login": "c",
                "password": "s",
                "extra": {
                    "identity_url": url,
                    "tenant": "acme",
                    "inference_client_id": "i",
                    "inference_client_secret": "j",
                },
            }
        ),
    )
    yield state
    server.shutdown()
    server.server_close()


# --- 7. no credentials in lineage ----------------------------------------------------------------------------


def test_lineage_strips_credentials(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, faq: str) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator))
    op = train(faq, data_urls=["https://reader:SECRET-pass@data.example.com/faq.txt"], data_files=None)
    lineage = op.get_openlineage_facets_on_complete(None)
    text = repr([(d.namespace, d.name) for d in lineage.inputs + lineage.outputs])
    assert "SECRET-pass" not in text and "reader" not in text
    assert ("https://data.example.com", "/faq.txt") in [(d.namespace, d.name) for d in lineage.inputs]
    assert socket.getfqdn()  # the file namespace still names this host
