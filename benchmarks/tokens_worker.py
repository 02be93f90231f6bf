"""
Token reuse in one process: ``python -m benchmarks.tokens_worker --operators 100 --polls 10000``.

Runs ``SestekTrainOperator.execute`` (submit, no wait) for ``--operators`` models on 8 threads, then
``--polls`` progress polls from 100 coroutines, each with its own hook as each trigger has. The parent
counts the token requests the emulator received. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks._common import setup_child_airflow_home


class _TaskInstance:
    """The part of a task instance ``execute`` uses."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokens_worker")
    parser.add_argument("--operators", type=int, default=100)
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--pollers", type=int, default=100)
    args = parser.parse_args(argv)
    home = setup_child_airflow_home()

    from airflow_provider_sestek.hooks.sestek import SestekHook
    from airflow_provider_sestek.operators.sestek import SestekTrainOperator

    data_dir = tempfile.mkdtemp(prefix="tokens-", dir=home)  # inside the run's work dir, removed with it
    faq = os.path.join(data_dir, "faq.txt")
    with open(faq, "w", encoding="utf-8") as handle:
        handle.write("Q: When are you open?\nA: From 9 to 17 on weekdays.\n")
    model_ids = [f"tok-{i:04d}" for i in range(args.operators)]

    def execute(model_id: str) -> dict[str, Any]:
        operator = SestekTrainOperator(
            task_id=f"train_{model_id.replace('-', '_')}",
            model_id=model_id,
            project_name="bench",
            data_files=[faq],
            wait_for_completion=False,
            deferrable=False,
        )
        result: dict[str, Any] = operator.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
        return result

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(execute, model_ids))
    operators_s = time.perf_counter() - start

    async def poll_all() -> int:
        per_poller = args.polls // args.pollers
        done = 0

        async def poller(index: int) -> None:
            nonlocal done
            hook = SestekHook(retry_limit=2)
            for k in range(per_poller):
                await hook.aget_training_progress(model_ids[(index + k) % len(model_ids)])
                done += 1

        # One pool for every poller, as in a triggerer: without the session each call closes its connection.
        async with SestekHook().async_session():
            await asyncio.gather(*(poller(i) for i in range(args.pollers)))
        return done

    start = time.perf_counter()
    polls = asyncio.run(poll_all())
    polls_s = time.perf_counter() - start
    print(
        json.dumps(
            {
                "operator_runs": len(results),
                "submitted": sum(1 for r in results if r.get("model_id")),
                "operators_s": operators_s,
                "polls": polls,
                "polls_s": polls_s,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
