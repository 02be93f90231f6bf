"""
Client CPU per progress poll, ours against bare aiohttp, in one process:
``python -m benchmarks.poll_cpu_worker --concurrency 50 --polls 5000 --rounds 3 --warmup 500``.

Submits one small training (so every answer is a 200), then polls its progress from ``--concurrency``
coroutines, each doing sequential polls, ``--polls`` in total per phase:

- ours: ``SestekHook(conn_id).aget_training_progress(model_id)`` inside ``async with hook.async_session()``,
  one hook per poller, as each trigger has (``SestekTrainingTrigger.run``);
- bare: one ``aiohttp.ClientSession`` GET of the same URL with the same ``Authorization: Bearer`` header
  (the token fetched once with ``hook.get_token()``), then ``json.loads`` of the body.

Both sides are warmed up first (token cached, connections open, config looked up). Then the phases
alternate for ``--rounds`` rounds (ours first in even rounds, bare first in odd ones); each phase is timed
with ``time.process_time()`` (every thread of this process) and ``time.perf_counter()``. The emulator runs
in another process, so its CPU is not counted. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._common import setup_child_airflow_home

MODEL_ID = "poll-cpu-0001"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.poll_cpu_worker")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--polls", type=int, default=5_000, help="polls per phase, over all pollers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500, help="warm-up polls per side")
    parser.add_argument("--conn-id", default="sestek_default")
    parser.add_argument(
        "--profile-dir", default=None, help="write cProfile stats of the measured phases here (ours.prof, bare.prof)"
    )
    args = parser.parse_args(argv)
    home = setup_child_airflow_home()

    import aiohttp

    from airflow_provider_sestek import api
    from airflow_provider_sestek.hooks.sestek import SestekHook

    setup_hook = SestekHook(args.conn_id)
    data_dir = tempfile.mkdtemp(prefix="poll-cpu-", dir=home)
    faq = os.path.join(data_dir, "faq.txt")
    with open(faq, "w", encoding="utf-8") as handle:
        handle.write("Q: When are you open?\nA: From 9 to 17 on weekdays.\n")
    setup_hook.submit_training(MODEL_ID, "bench", data_files=[faq])
    token = setup_hook.get_token()
    url = api.progress_url(setup_hook.config.base_url, MODEL_ID)
    headers = {"Authorization": f"Bearer {token}"}
    per_poller = max(1, args.polls // args.concurrency)
    warm_per_poller = max(1, args.warmup // args.concurrency)
    profilers: dict[str, Any] = {}
    if args.profile_dir:
        import cProfile

        # CPU time, not wall time: the emulator shares the cores, and a descheduled send is not our cost.
        profilers = {"ours": cProfile.Profile(time.process_time), "bare": cProfile.Profile(time.process_time)}

    async def measure(
        name: str, poll: Callable[[int], Awaitable[Any]], count: int, profile: bool = False
    ) -> dict[str, Any]:
        async def poller(index: int) -> None:
            for _ in range(count):
                await poll(index)

        gc.collect()
        profiler = profilers.get(name) if profile else None
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(poller(i) for i in range(args.concurrency)))
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        polls = count * args.concurrency
        return {
            "side": name,
            "polls": polls,
            "cpu_s": cpu,
            "wall_s": wall,
            "us_per_poll": cpu / polls * 1e6,
            "user_us_per_poll": (usage.ru_utime - usage0.ru_utime) / polls * 1e6,
            "sys_us_per_poll": (usage.ru_stime - usage0.ru_stime) / polls * 1e6,
        }

    async def run() -> dict[str, Any]:
        hooks = [SestekHook(args.conn_id, retry_limit=2) for _ in range(args.concurrency)]
        statuses: dict[str, dict[str, int]] = {"ours": {}, "bare": {}}
        seen: dict[str, Any] = {}

        async def ours(index: int) -> None:
            progress = await hooks[index].aget_training_progress(MODEL_ID)
            statuses["ours"]["200"] = statuses["ours"].get("200", 0) + 1
            seen.setdefault("ours", progress.raw_training_status)

        async with hooks[0].async_session(), aiohttp.ClientSession() as session:

            async def bare(index: int) -> None:
                async with session.get(url, headers=headers) as response:
                    body = json.loads(await response.read())
                key = str(response.status)
                statuses["bare"][key] = statuses["bare"].get(key, 0) + 1
                seen.setdefault("bare", body.get("trainingStatus"))

            sides = {"ours": ours, "bare": bare}
            await measure("ours", ours, warm_per_poller)
            await measure("bare", bare, warm_per_poller)
            phases = []
            for round_no in range(args.rounds):
                order = ("ours", "bare") if round_no % 2 == 0 else ("bare", "ours")
                for name in order:
                    phase = await measure(name, sides[name], per_poller, profile=True)
                    phase["round"] = round_no
                    phases.append(phase)
        return {"phases": phases, "statuses": statuses, "training_status": seen}

    result = asyncio.run(run())
    for name, profiler in profilers.items():
        profiler.dump_stats(os.path.join(args.profile_dir, f"{name}.prof"))
    result.update(
        {
            "concurrency": args.concurrency,
            "polls_per_phase": per_poller * args.concurrency,
            "warmup_polls_per_side": warm_per_poller * args.concurrency,
            "rounds": args.rounds,
            "url_path": url.split("://", 1)[1].split("/", 1)[1],
        }
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
