"""
N triggers in one event loop, as the triggerer runs them: ``python -m benchmarks.trigger_worker ...``.

``--kind sestek`` runs :class:`SestekTrainingTrigger` on existing trainings; ``--kind peer`` runs the
http provider's ``HttpSensorTrigger`` (deferrable ``HttpSensor``) on the same progress endpoint with a
static bearer header from the connection extra. Each trigger is wrapped like the triggerer's
``run_trigger`` (a task per trigger, a greenback portal, ``async for event in trigger.run()``).

Trigger ``i`` starts at ``i / N`` of one poll interval, as triggers deferred at different moments do,
so the aggregate rate is ``N / poll_interval`` from the start. After the ramp (one poll interval) a
ticker task measures the event-loop lag for ``--measure`` seconds. stdout carries ``PHASE <name>``
lines (so the parent can read the emulator's counters at the window's edges), the triggers' own log
lines (Airflow's structlog prints them there; the parent counts their bytes) and a final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from typing import Any

from benchmarks._common import percentile, proc_status, setup_child_airflow_home

TICK = 0.01


def phase(name: str) -> None:
    print(f"PHASE {name} {time.time():.3f}", flush=True)


def build_triggers(kind: str, n: int, poll_interval: float, prefix: str) -> list[Any]:
    if kind == "sestek":
        from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger

        return [
            SestekTrainingTrigger(model_id=f"{prefix}{i:05d}", poll_interval=poll_interval, end_time=None)
            for i in range(n)
        ]
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    from airflow_provider_sestek import api

    return [
        HttpSensorTrigger(
            # A model nobody trains: the sensor keeps poking while the answer is 404.
            endpoint=api.PROGRESS_PATH.format(model_id=f"peer-{prefix}{i:05d}").lstrip("/"),
            http_conn_id="bench_http",
            method="GET",
            poke_interval=poll_interval,
        )
        for i in range(n)
    ]


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import greenback

    loop = asyncio.get_running_loop()
    n = args.n
    events: list[Any] = []
    errors: list[str] = []
    lags: list[float] = []
    measuring = False

    async def ticker() -> None:
        while True:
            start = loop.time()
            await asyncio.sleep(TICK)
            if measuring:
                lags.append(loop.time() - start - TICK)

    async def run_trigger(index: int, trigger: Any) -> None:
        await asyncio.sleep(args.poll_interval * index / n)
        await greenback.ensure_portal()
        try:
            async for event in trigger.run():
                events.append(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    gc_pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(stage: str, info: dict[str, Any]) -> None:
        if stage == "start":
            gc_started[0] = time.perf_counter()
        elif measuring:
            gc_pauses.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)
    gc.collect()
    rss_base = proc_status()["VmRSS"]
    triggers = build_triggers(args.kind, n, args.poll_interval, args.prefix)
    tick_task = asyncio.create_task(ticker())
    phase("start")
    tasks = [asyncio.create_task(run_trigger(i, t), name=f"trigger-{i}") for i, t in enumerate(triggers)]
    # Ramp: every trigger has made its first poll after one interval.
    await asyncio.sleep(args.poll_interval + 1.0)
    phase("steady")
    measuring = True
    window_start, cpu_start = loop.time(), time.process_time()
    await asyncio.sleep(args.measure)
    measuring = False
    window, cpu = loop.time() - window_start, time.process_time() - cpu_start
    phase("end")
    rss_end = proc_status()["VmRSS"]
    alive = sum(1 for t in tasks if not t.done())
    for task in [*tasks, tick_task]:
        task.cancel()
    await asyncio.gather(*tasks, tick_task, return_exceptions=True)
    pool_limit = None
    if args.kind == "sestek":
        from airflow_provider_sestek.hooks.sestek import SestekHook

        pool_limit = SestekHook.async_max_connections
    return {
        "kind": args.kind,
        "n": n,
        "poll_interval": args.poll_interval,
        "pool_limit": pool_limit,
        "window_s": window,
        "cpu_pct": 100 * cpu / window,
        "ticks": len(lags),
        "loop_lag_p50_ms": percentile(lags, 50) * 1000,
        "loop_lag_p99_ms": percentile(lags, 99) * 1000,
        "loop_lag_max_ms": max(lags, default=float("nan")) * 1000,
        "gc_collections": len(gc_pauses),
        "gc_pause_total_ms": sum(gc_pauses) * 1000,
        "gc_pause_max_ms": max(gc_pauses, default=0.0) * 1000,
        "rss_base_kib": rss_base,
        "rss_end_kib": rss_end,
        "rss_per_trigger_kib": (rss_end - rss_base) / n,
        "alive_at_end": alive,
        "events": len(events),
        "errors": len(errors),
        "first_errors": errors[:3],
        "first_events": [repr(getattr(e, "payload", e))[:300] for e in events[:3]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trigger_worker")
    parser.add_argument("--kind", choices=("sestek", "peer"), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--measure", type=float, required=True)
    parser.add_argument("--prefix", default="bench-")
    args = parser.parse_args(argv)
    setup_child_airflow_home()
    import greenback  # noqa: F401 - part of the baseline, as in the triggerer

    if args.kind == "sestek":
        import aiohttp  # noqa: F401 - imported on the first poll; a module, not a per-trigger cost

    build_triggers(args.kind, 1, args.poll_interval, args.prefix)  # imports, outside the baseline
    result = asyncio.run(run_all(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
