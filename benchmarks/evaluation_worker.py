"""
One golden-set evaluation in a fresh process: ``python -m benchmarks.evaluation_worker --mode batched --cases 2000``.

``batched`` runs ``SestekEvaluateModelOperator.execute`` on a JSONL file of the cases (20 per request);
``naive`` is the loop a user would write with the hook: read the file into a list, one ``SestekHook.ask`` per
case, check ``expect_all`` by hand. The model is trained and published first if it is not. Prints one JSON line:
wall time of the evaluation and the growth of the peak RSS over the RSS before it (``VmHWM`` reset first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from benchmarks._common import proc_status, reset_peak_rss, setup_child_airflow_home

MODEL_ID = "bench-eval"
FAQ = (
    "Q: When are you open?\nA: From 9 to 17 on weekdays.\n\n"
    "Q: Do you ship abroad?\nA: Yes, to the UK and Norway within 8 days.\n\n"
    "Q: How do I reset my password?\nA: Use the Forgot password link on the sign-in page.\n"
)
QUESTIONS = (
    ("When are you open?", ["9 to 17"]),
    ("Do you ship abroad?", ["Norway"]),
    ("How do I reset my password?", ["Forgot password"]),
)


def write_cases(path: str, n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            query, expect = QUESTIONS[i % len(QUESTIONS)]
            handle.write(json.dumps({"id": f"case-{i}", "query": query, "expect_all": expect}) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evaluation_worker")
    parser.add_argument("--mode", choices=("batched", "naive"), required=True)
    parser.add_argument("--cases", type=int, default=2000)
    args = parser.parse_args(argv)
    home = setup_child_airflow_home()

    from airflow_provider_sestek.hooks.sestek import SestekHook
    from airflow_provider_sestek.operators.sestek import SestekEvaluateModelOperator

    hook = SestekHook()
    if not _published(hook):
        faq = os.path.join(home, "faq.txt")
        with open(faq, "w", encoding="utf-8") as handle:
            handle.write(FAQ)
        hook.submit_training(MODEL_ID, "bench", data_files=[faq])
        while not hook.get_training_progress(MODEL_ID).is_published:
            time.sleep(0.01)
    cases = os.path.join(home, f"cases-{args.cases}.jsonl")
    write_cases(cases, args.cases)
    hook.ask(MODEL_ID, "warm-up")  # token and connection, outside the measurement

    reset = reset_peak_rss()
    before = proc_status()["VmRSS"]
    started = time.perf_counter()
    if args.mode == "batched":
        op = SestekEvaluateModelOperator(
            task_id="evaluate", model_id=MODEL_ID, cases=cases, min_pass_rate=0.0, emit_model_asset=False
        )
        summary: dict[str, Any] = op.execute({})  # type: ignore[arg-type]
        passed = summary["passed"]
    else:
        with open(cases, encoding="utf-8") as handle:
            loaded = [json.loads(line) for line in handle]
        passed = 0
        for case in loaded:
            answer = hook.ask(MODEL_ID, case["query"])["result"][0]["answer"]
            passed += all(s.lower() in answer.lower() for s in case["expect_all"])
    seconds = time.perf_counter() - started
    peak = proc_status()["VmHWM"]
    print(
        json.dumps(
            {
                "mode": args.mode,
                "cases": args.cases,
                "passed": passed,
                "seconds": seconds,
                "rss_growth_mib": (peak - before) / 1024 if reset else None,
            }
        )
    )
    return 0


def _published(hook: Any) -> bool:
    from airflow_provider_sestek.exceptions import SestekApiError

    try:
        return bool(hook.get_training_progress(MODEL_ID).is_published)
    except SestekApiError:  # 404: never trained on this emulator
        return False


if __name__ == "__main__":
    sys.exit(main())
