"""Evaluation: a golden set of N cases, batched by the operator vs one request per case, and memory at 10x N."""

from __future__ import annotations

import os
from typing import Any

from benchmarks._common import PYTHON, EmulatorProcess, child_env, log, run_json_child, sestek_connection_json


def run(workdir: str, cases: int) -> dict[str, Any]:
    with EmulatorProcess("--advance", "poll", workdir=workdir) as emu:
        from airflow_provider_sestek.testing import DEFAULT_INFERENCE_CLIENTS, DEFAULT_TENANT

        inference_id, inference_secret = next(iter(DEFAULT_INFERENCE_CLIENTS.items()))
        conn = sestek_connection_json(
            emu.url,
            tenant=DEFAULT_TENANT,
            inference_client_id=inference_id,
            inference_client_secret=inference_secret,
        )
        env = child_env(
            {"AIRFLOW_CONN_SESTEK_DEFAULT": conn},
            airflow_home=os.path.join(workdir, "airflow-home"),
        )
        runs: dict[str, Any] = {}
        for name, mode, n in (
            ("batched", "batched", cases),
            ("naive", "naive", cases),
            ("batched_10x", "batched", cases * 10),
        ):
            before = emu.counters()["inference_requests"]
            runs[name] = run_json_child(
                [PYTHON, "-m", "benchmarks.evaluation_worker", "--mode", mode, "--cases", str(n)], env, timeout=1800
            )
            # The worker's warm-up question is one request outside the measurement.
            runs[name]["requests"] = emu.counters()["inference_requests"] - before - 1
    batched, naive, big = runs["batched"], runs["naive"], runs["batched_10x"]
    out = {
        "cases": cases,
        "batched_s": round(batched["seconds"], 2),
        "naive_s": round(naive["seconds"], 2),
        "speedup_vs_naive": round(naive["seconds"] / batched["seconds"], 1) if batched["seconds"] else None,
        "batched_requests": batched["requests"],
        "naive_requests": naive["requests"],
        "batched_rss_growth_mib": _mib(batched["rss_growth_mib"]),
        "naive_rss_growth_mib": _mib(naive["rss_growth_mib"]),
        "batched_10x_cases": big["cases"],
        "batched_10x_rss_growth_mib": _mib(big["rss_growth_mib"]),
        "passed": [batched["passed"], naive["passed"], big["passed"]],
    }
    log(
        f"evaluation: {cases} cases batched {out['batched_s']} s / {out['batched_requests']} requests, naive "
        f"{out['naive_s']} s / {out['naive_requests']} requests; RSS growth {out['batched_rss_growth_mib']} MiB at "
        f"{cases}, {out['batched_10x_rss_growth_mib']} MiB at {big['cases']}"
    )
    return out


def _mib(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value
