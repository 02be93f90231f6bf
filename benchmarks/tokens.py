"""Tokens: operator runs and trigger polls in one process share one token (counted by the emulator)."""

from __future__ import annotations

import os
from typing import Any

from benchmarks._common import PYTHON, EmulatorProcess, child_env, log, run_json_child, sestek_connection_json


def run(workdir: str, operators: int, polls: int) -> dict[str, Any]:
    with EmulatorProcess(
        "--advance", "time", "--seconds-per-step", "1000000", "--token-prefix", "bench-tok-", workdir=workdir
    ) as emu:
        before = emu.counters()
        env = child_env(
            {"AIRFLOW_CONN_SESTEK_DEFAULT": sestek_connection_json(emu.url)},
            airflow_home=os.path.join(workdir, "airflow-home"),
        )
        result = run_json_child(
            [PYTHON, "-m", "benchmarks.tokens_worker", "--operators", str(operators), "--polls", str(polls)],
            env,
            timeout=600,
        )
        after = emu.counters()
        lifetime = emu.client.state()["config"].get("token_lifetime")
    out = {
        "operator_runs": result["operator_runs"],
        "polls": result["polls"],
        "token_requests": after["token_requests"] - before["token_requests"],
        "trainings_created": after["trainings_created"] - before["trainings_created"],
        "progress_polls_received": after["progress_polls"] - before["progress_polls"],
        "token_lifetime_s": lifetime,
        "seconds": round(result["operators_s"] + result["polls_s"], 1),
    }
    log(
        f"tokens: {out['operator_runs']} operator runs + {out['polls']} polls -> "
        f"{out['token_requests']} token request(s)"
    )
    return out
