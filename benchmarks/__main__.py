"""
``python -m benchmarks`` (``make bench``): every benchmark, ``benchmarks/results.json`` and BENCHMARKS.md.

``--smoke`` runs a tiny version (50 triggers, 10 MiB uploads) into a temporary directory: it keeps the
harness from rotting and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from importlib.util import find_spec
from typing import Any

from benchmarks import evaluation, imports, poll_cpu, report, tokens, triggers, upload, upload_s3
from benchmarks._common import REPO, log, machine_info

SECTIONS = ("upload", "upload_s3", "import", "tokens", "triggers", "poll_cpu", "evaluation")


def _has(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run (N=50, 10 MiB) into a temporary directory")
    parser.add_argument("--out-dir", default=None, help="write results.json and BENCHMARKS.md here instead")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these parts (repeatable)")
    parser.add_argument("--ns", default=None, help="trigger counts, comma-separated (default 1000,5000,10000)")
    parser.add_argument("--rate", type=float, default=None, help="configured polls/s of every trigger run")
    parser.add_argument("--measure", type=float, default=None, help="seconds of each trigger measurement window")
    parser.add_argument("--file-mib", type=int, default=None, help="size of the upload (default 1024)")
    parser.add_argument("--upload-reps", type=int, default=None)
    parser.add_argument("--s3-mib", type=int, default=None, help="size of the s3:// object (default 256)")
    parser.add_argument("--s3-reps", type=int, default=None)
    parser.add_argument("--import-runs", type=int, default=None)
    parser.add_argument("--operators", type=int, default=None)
    parser.add_argument("--polls", type=int, default=None)
    parser.add_argument("--cpu-polls", type=int, default=None, help="poll_cpu: polls per side and round")
    parser.add_argument("--cpu-concurrency", type=int, default=None, help="poll_cpu: concurrent pollers")
    parser.add_argument("--cpu-rounds", type=int, default=None, help="poll_cpu: alternating rounds per side")
    parser.add_argument("--cpu-warmup", type=int, default=None, help="poll_cpu: warm-up polls per side")
    parser.add_argument("--eval-cases", type=int, default=None, help="evaluation: golden-set cases (default 2000)")
    args = parser.parse_args(argv)
    full = {
        "ns": "1000,5000,10000",
        # 10,000 waits at the operators' default poll_interval of 30 s: 333 polls/s, kept for every N.
        "rate": 10_000 / 30,
        "measure": 30.0,
        "file_mib": 1024,
        "upload_reps": 5,
        "s3_mib": 256,
        "s3_reps": 3,
        "import_runs": 11,
        "operators": 100,
        "polls": 10_000,
        "cpu_polls": 5_000,
        "cpu_concurrency": 50,
        "cpu_rounds": 3,
        "cpu_warmup": 500,
        "eval_cases": 2000,
    }
    smoke = {
        "ns": "50",
        "rate": 25.0,
        "measure": 3.0,
        "file_mib": 10,
        "upload_reps": 1,
        "s3_mib": 10,
        "s3_reps": 1,
        "import_runs": 2,
        "operators": 5,
        "polls": 200,
        "cpu_polls": 200,
        "cpu_concurrency": 50,
        "cpu_rounds": 3,
        "cpu_warmup": 100,
        "eval_cases": 30,
    }
    for key, value in (smoke if args.smoke else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.ns = [int(n) for n in str(args.ns).split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="sestek-bench-")
    os.environ["AIRFLOW_HOME"] = os.path.join(workdir, "airflow-home")
    os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
    if args.out_dir:
        out_dir = md_dir = args.out_dir
    elif args.smoke:
        out_dir = md_dir = tempfile.mkdtemp(prefix="sestek-bench-smoke-")
    else:
        out_dir, md_dir = os.path.join(REPO, "benchmarks"), str(REPO)
    os.makedirs(out_dir, exist_ok=True)
    only = set(args.only or SECTIONS)
    has_http, has_dbt = _has("airflow.providers.http"), _has("airflow.providers.dbt.cloud")
    if not has_http:
        log("apache-airflow-providers-http is not installed: the trigger peer is skipped")
    if not has_dbt:
        log("apache-airflow-providers-dbt-cloud is not installed: the import peer is skipped")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "smoke": args.smoke,
            "trigger_ns": args.ns,
            "configured_polls_per_s": round(args.rate, 1),
            "measure_s": args.measure,
            "file_mib": args.file_mib,
            "upload_reps": args.upload_reps,
            "s3_mib": args.s3_mib,
            "s3_reps": args.s3_reps,
            "import_runs": args.import_runs,
            "poll_cpu_polls": args.cpu_polls,
            "poll_cpu_concurrency": args.cpu_concurrency,
            "poll_cpu_rounds": args.cpu_rounds,
            "eval_cases": args.eval_cases,
        },
    }
    try:
        if "upload" in only:
            results["upload"] = upload.run(workdir, args.file_mib, args.upload_reps)
        if "upload_s3" in only:
            if _has("moto") and _has("s3fs"):
                results["upload_s3"] = upload_s3.run(workdir, args.s3_mib, args.s3_reps)
            else:
                log("moto or s3fs is not installed (make bench-deps): the s3:// upload is skipped")
        if "import" in only:
            results["import"] = imports.run(workdir, args.import_runs)
        if "tokens" in only:
            results["tokens"] = tokens.run(workdir, args.operators, args.polls)
        if "triggers" in only:
            kinds = ("sestek", "peer") if has_http else ("sestek",)
            results["triggers"] = summarize_triggers(triggers.run(workdir, args.ns, args.rate, args.measure, kinds))
        if "poll_cpu" in only:
            results["poll_cpu"] = poll_cpu.run(
                workdir, args.cpu_concurrency, args.cpu_polls, args.cpu_rounds, args.cpu_warmup
            )
        if "evaluation" in only:
            results["evaluation"] = evaluation.run(workdir, args.eval_cases)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["runtime_s"] = round(time.monotonic() - started, 1)
    results["targets"] = report.evaluate(results)
    results_path = os.path.join(out_dir, "results.json")
    with open(results_path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    os.replace(results_path + ".tmp", results_path)
    markdown = render_markdown(results)
    with open(os.path.join(md_dir, "BENCHMARKS.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown)
    print(report.table(results))
    print()
    print(report.targets_table(results))
    log(f"done in {results['runtime_s']:.0f}s: {results_path}, {os.path.join(md_dir, 'BENCHMARKS.md')}")
    return 0


def summarize_triggers(raw: dict[str, Any]) -> dict[str, Any]:
    """The fixed keys (at the largest N), and every run by N."""
    runs = raw["runs"]
    ns = sorted({r["n"] for r in runs})
    by_n = [{"n": n, "sestek": _pick(runs, "sestek", n), "peer": _pick(runs, "peer", n)} for n in ns]
    top = by_n[-1]
    ours, peer = top["sestek"] or {}, top["peer"] or {}
    return {
        "n": top["n"],
        "loop_lag_p99_ms": _round(ours.get("loop_lag_p99_ms")),
        "rss_per_trigger_kib": _round(ours.get("rss_per_trigger_kib")),
        "token_requests": ours.get("token_requests"),
        "max_connections": ours.get("max_connections"),
        "polls_per_s": _round(ours.get("polls_per_s")),
        "peer_loop_lag_p99_ms": _round(peer.get("loop_lag_p99_ms")),
        "peer_rss_per_trigger_kib": _round(peer.get("rss_per_trigger_kib")),
        "peer_max_connections": peer.get("max_connections"),
        "loop_lag_p50_ms": _round(ours.get("loop_lag_p50_ms")),
        "peer_loop_lag_p50_ms": _round(peer.get("loop_lag_p50_ms")),
        "peer_polls_per_s": _round(peer.get("polls_per_s")),
        "configured_polls_per_s": _round(ours.get("configured_polls_per_s")),
        "poll_interval_s": _round(ours.get("poll_interval")),
        "pool_limit": ours.get("pool_limit"),
        "registration_s": _round(raw.get("registration_s")),
        "by_n": by_n,
    }


def _pick(runs: list[dict[str, Any]], kind: str, n: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["kind"] == kind and r["n"] == n), None)


def _round(value: Any, digits: int = 1) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def render_markdown(results: dict[str, Any]) -> str:
    from benchmarks.doc import render

    return render(results)


if __name__ == "__main__":
    sys.exit(main())
