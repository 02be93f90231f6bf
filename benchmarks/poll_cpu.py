"""Client CPU per progress poll: our async path against a bare aiohttp GET, in one child process."""

from __future__ import annotations

import os
from typing import Any

from benchmarks._common import (
    PYTHON,
    EmulatorProcess,
    child_env,
    log,
    median,
    run_json_child,
    sestek_connection_json,
)


def run(workdir: str, concurrency: int, polls: int, rounds: int, warmup: int) -> dict[str, Any]:
    # Clock-driven lifecycle with a million seconds per status: every answer is the same 200 for both
    # sides (the default, one status per poll, would finish the training during the warm-up).
    with EmulatorProcess(
        "--advance", "time", "--seconds-per-step", "1000000", "--token-prefix", "bench-cpu-", workdir=workdir
    ) as emu:
        before = emu.counters()
        env = child_env(
            {"AIRFLOW_CONN_SESTEK_DEFAULT": sestek_connection_json(emu.url)},
            airflow_home=os.path.join(workdir, "airflow-home"),
        )
        result = run_json_child(
            [
                PYTHON,
                "-m",
                "benchmarks.poll_cpu_worker",
                "--concurrency",
                str(concurrency),
                "--polls",
                str(polls),
                "--rounds",
                str(rounds),
                "--warmup",
                str(warmup),
            ],
            env,
            timeout=900,
        )
        after = emu.counters()
    phases = result["phases"]
    by_side = {side: [p for p in phases if p["side"] == side] for side in ("ours", "bare")}
    ours_us = [p["us_per_poll"] for p in by_side["ours"]]
    bare_us = [p["us_per_poll"] for p in by_side["bare"]]
    ours, bare = median(ours_us), median(bare_us)
    ratios = [o["us_per_poll"] / b["us_per_poll"] for o, b in zip(by_side["ours"], by_side["bare"], strict=True)]
    out = {
        "concurrency": result["concurrency"],
        "polls": result["polls_per_phase"],
        "rounds": result["rounds"],
        "warmup_polls": result["warmup_polls_per_side"],
        "ours_us_per_poll": round(ours, 1),
        "bare_us_per_poll": round(bare, 1),
        "ratio": round(ours / bare, 2) if bare else None,
        "round_ratios": [round(r, 2) for r in ratios],
        "ours_us_rounds": [round(v, 1) for v in ours_us],
        "bare_us_rounds": [round(v, 1) for v in bare_us],
        "ours_user_us_per_poll": round(median([p["user_us_per_poll"] for p in by_side["ours"]]), 1),
        "ours_sys_us_per_poll": round(median([p["sys_us_per_poll"] for p in by_side["ours"]]), 1),
        "bare_user_us_per_poll": round(median([p["user_us_per_poll"] for p in by_side["bare"]]), 1),
        "bare_sys_us_per_poll": round(median([p["sys_us_per_poll"] for p in by_side["bare"]]), 1),
        "ours_polls_per_s": round(median([p["polls"] / p["wall_s"] for p in by_side["ours"]]), 0),
        "bare_polls_per_s": round(median([p["polls"] / p["wall_s"] for p in by_side["bare"]]), 0),
        "statuses": result["statuses"],
        "training_status": result["training_status"],
        "token_requests": after["token_requests"] - before["token_requests"],
        "progress_polls_received": after["progress_polls"] - before["progress_polls"],
        "url_path": result["url_path"],
    }
    log(
        f"poll_cpu: C={out['concurrency']}, {out['polls']:,} polls x {out['rounds']} rounds per side: "
        f"ours {out['ours_us_per_poll']} us, bare aiohttp {out['bare_us_per_poll']} us CPU per poll "
        f"(x{out['ratio']})"
    )
    return out
