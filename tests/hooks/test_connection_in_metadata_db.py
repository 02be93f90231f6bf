"""A connection stored in the metadata DB (``airflow connections add``, the README's step 1) serves every mode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db")

CONN_ID = "sestek_in_db"


@pytest.fixture
def stored_connection(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[SestekEmulator]:
    """The emulator's connection as a metadata DB row, with no environment variable for it."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)
    spec = json.loads(connection_json(emulator))
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == CONN_ID).delete()
        session.add(
            Connection(
                conn_id=CONN_ID,
                conn_type=spec["conn_type"],
                host=spec["host"],
                login=spec["login"],
                password=spec["password"],
                extra=json.dumps(spec["extra"]),
            )
        )
    yield emulator
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == CONN_ID).delete()


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_training_reads_a_connection_stored_in_the_metadata_db(
    stored_connection: SestekEmulator, faq: str, deferrable: bool
) -> None:
    # Airflow 3.3's dag.test() runs a trigger in-process with comms that only answer synchronous requests:
    # the trigger's connection lookup must still find the stored row (it failed with "isn't defined").
    result = run_task(
        lambda: SestekTrainOperator(
            task_id="under_test",
            sestek_conn_id=CONN_ID,
            model_id="faq-bot",
            project_name="FAQ",
            data_files=[faq],
            poll_interval=0.05,
            deferrable=deferrable,
        )
    )
    assert result.task_states["under_test"] == "success", result
    assert result.value["training_status"] == "Completed"
