"""
A tiny run of ``python -m benchmarks`` (50 triggers, 10 MiB uploads from a file and from s3://) so the harness
does not rot.

It checks that the run completes and that the results have every fixed key; it asserts nothing about
timings. Peers that are not installed (the http and dbt Cloud providers are installed by ``make
bench-deps`` only) are skipped by the harness itself, and their figures are ``None``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

KEYS = {
    "upload": (
        "file_mib",
        "sestek_mib_s",
        "curl_mib_s",
        "naive_mib_s",
        "sestek_rss_growth_mib",
        "naive_rss_growth_mib",
    ),
    "upload_s3": (
        "file_mib",
        "sestek_mib_s",
        "s3fs_blocks_read_mib_s",
        "s3fs_read_mib_s",
        "local_mib_s",
        "sestek_rss_growth_mib",
        "s3fs_blocks_read_rss_growth_mib",
    ),
    "triggers": (
        "n",
        "loop_lag_p99_ms",
        "rss_per_trigger_kib",
        "token_requests",
        "max_connections",
        "polls_per_s",
        "peer_loop_lag_p99_ms",
        "peer_rss_per_trigger_kib",
        "peer_max_connections",
    ),
    "import": ("baseline_ms", "sestek_ms", "dbt_ms"),
    "tokens": ("operator_runs", "polls", "token_requests"),
    "evaluation": ("cases", "batched_s", "naive_s", "batched_requests", "naive_requests", "batched_rss_growth_mib"),
}
PEER_KEYS = {"peer_loop_lag_p99_ms", "peer_rss_per_trigger_kib", "peer_max_connections", "dbt_ms", "curl_mib_s"}


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    find_spec("airflow.sdk") is None,
    reason="the benchmarks measure the newest Airflow (3.x); `make bench` runs there",
)
def test_bench_smoke_run_completes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for section, keys in KEYS.items():
        assert section in results, section
        for key in keys:
            assert key in results[section], f"{section}.{key}"
            if key not in PEER_KEYS:
                assert results[section][key] is not None, f"{section}.{key}"
    assert results["upload"]["file_mib"] == 10
    assert results["upload_s3"]["file_mib"] == 10
    assert results["triggers"]["n"] == 50
    if _installed("airflow.providers.http"):
        assert results["triggers"]["peer_rss_per_trigger_kib"] is not None
    if _installed("airflow.providers.dbt.cloud"):
        assert results["import"]["dbt_ms"] is not None
    markdown = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| measure | ours | peer |" in markdown
    assert "| target | measured | met |" in markdown
