"""What the hook holds on to: file descriptors during an upload, event loops after async calls (issue 9)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import REPO, connection_json


def test_thousands_of_files_upload_under_a_small_descriptor_limit(emulator: SestekEmulator, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    count = 5000
    for i in range(count):
        (corpus / f"doc-{i:04d}.txt").write_text(f"Q: What is item {i}?\nA: Item {i} is number {i}.\n")
    # The client runs in a process of its own with 256 descriptors, as a worker on a tight ulimit would.
    script = textwrap.dedent(
        """
        import os, resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        from airflow_provider_sestek.hooks.sestek import SestekHook
        files = sorted(os.path.join(sys.argv[1], name) for name in os.listdir(sys.argv[1]))
        SestekHook(retry_delay=0.01).submit_training("corpus-bot", "p", data_files=files)
        print("submitted", len(files))
        """
    )
    env = {**os.environ, "AIRFLOW_CONN_SESTEK_DEFAULT": connection_json(emulator)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(corpus)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"submitted {count}" in done.stdout
    (train,) = [r for r in emulator.requests if r.endpoint == "train"]
    assert len(train.files) == count
    assert emulator.counters["trainings_created"] == 1


def test_finished_event_loops_are_not_kept(sestek_conn: SestekEmulator) -> None:
    """Contended token locks used to pin their loop in a weak-keyed map for ever."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def contend() -> None:
        from airflow_provider_sestek.hooks.sestek import clear_token_cache

        loops.append(weakref.ref(asyncio.get_running_loop()))
        clear_token_cache()  # every loop fetches, and its callers queue on the token lock
        hooks = [SestekHook() for _ in range(5)]
        await asyncio.gather(
            *(hook.aget_training_progress("unknown-but-valid") for hook in hooks), return_exceptions=True
        )

    for _ in range(5):
        asyncio.run(contend())
    gc.collect()
    # Only the newest may survive: asgiref (behind Airflow's async connection lookup) remembers the thread's
    # last loop in a thread-local. Before, every contended loop stayed alive.
    alive = [ref for ref in loops[:-1] if ref() is not None]
    assert alive == []
    from airflow_provider_sestek.hooks.transport_async import ASYNC_CLIENTS

    assert ASYNC_CLIENTS.pools() == 0


@pytest.mark.parametrize("kind", ["training", "inference"])
def test_token_lock_contention_still_single_flight(sestek_conn: SestekEmulator, kind: str) -> None:
    async def many() -> set[str]:
        return set(await asyncio.gather(*(SestekHook().aget_token(kind) for _ in range(50))))

    assert len(asyncio.run(many())) == 1
    assert sestek_conn.counters["token_requests"] == 1
