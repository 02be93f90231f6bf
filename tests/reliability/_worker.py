"""
A bare worker process for the crash tests: runs ``SestekTrainOperator.execute`` the way a task runner would,
so the test can SIGKILL it at the worst moment. ``python -m tests.reliability._worker MODEL_ID DATA_FILE``.
"""

from __future__ import annotations

import sys
from typing import Any


class _TaskInstance:
    def xcom_push(self, key: str, value: Any) -> None:
        print(f"xcom {key}={value!r}", flush=True)


def main(model_id: str, data_file: str) -> None:
    from airflow_provider_sestek.operators.sestek import SestekTrainOperator

    operator = SestekTrainOperator(
        task_id="train",
        model_id=model_id,
        project_name="Crash test",
        data_files=[data_file],
        deferrable=False,
        poll_interval=0.2,
    )
    print("worker started", flush=True)
    operator.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
    print("worker finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
