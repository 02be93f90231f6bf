"""The markdown table of a run, the targets and BENCHMARKS.md."""

from __future__ import annotations

import math
from typing import Any

#: (key path, description, check) of each target of the issue.
TARGETS = (
    ("upload.sestek_rss_growth_mib", "Upload: client peak RSS growth <= 64 MiB"),
    ("upload.throughput_vs_curl", "Upload: throughput >= 0.8x curl"),
    ("upload_s3.sestek_rss_growth_mib", "Upload from s3:// (256 MiB object): client peak RSS growth <= 64 MiB"),
    ("triggers.loop_lag_p99_ms", "Triggers at the largest N: loop-lag p99 <= 100 ms"),
    ("triggers.token_requests", "Triggers at the largest N: exactly 1 token request"),
    ("triggers.max_connections", "Triggers at the largest N: connections <= our pool limit"),
    ("triggers.rss_per_trigger_kib", "Triggers at the largest N: memory per trigger no worse than the peer"),
    ("import.sestek_ms", "DAG parse: operator + sensor modules <= 30 ms over airflow.sdk (same process)"),
    ("tokens.token_requests", "Tokens: operator runs + polls in one process -> 1 token request"),
    ("poll_cpu.ratio", "Async poll: client CPU per progress poll <= 1.5x bare aiohttp"),
)


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 100):
        return f"{round(value):,}"
    return f"{value:,.{digits}f}"


def _ratio(ours: Any, peer: Any, higher_is_better: bool) -> str:
    """Ours against the peer, as "N.Nx better/worse"."""
    if ours is None or peer is None or not ours or not peer:
        return "n/a"
    factor = ours / peer if higher_is_better else peer / ours
    if factor >= 1:
        return f"{factor:.1f}x better"
    return f"{1 / factor:.1f}x worse"


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Whether each target was met, with the measured figure."""
    upload, triggers, imports, tokens = (results.get(k) or {} for k in ("upload", "triggers", "import", "tokens"))
    out = []
    for key, text in TARGETS:
        figure: Any
        met: bool | None
        if key == "upload.sestek_rss_growth_mib":
            figure = upload.get("sestek_rss_growth_mib")
            met = None if figure is None else figure <= 64
            shown = f"{_num(figure)} MiB"
        elif key == "upload.throughput_vs_curl":
            ours, curl = upload.get("sestek_mib_s"), upload.get("curl_mib_s")
            figure = ours / curl if ours and curl else None
            met = None if figure is None else figure >= 0.8
            shown = f"{figure:.2f}x curl" if figure is not None else "n/a (no curl)"
        elif key == "upload_s3.sestek_rss_growth_mib":
            s3 = results.get("upload_s3") or {}
            figure = s3.get("sestek_rss_growth_mib")
            met = None if figure is None else figure <= 64
            shown = f"{_num(figure)} MiB ({_num(s3.get('file_mib'))} MiB object)"
        elif key == "triggers.loop_lag_p99_ms":
            figure = triggers.get("loop_lag_p99_ms")
            met = None if figure is None else figure <= 100
            shown = f"{_num(figure)} ms at N={_num(triggers.get('n'))}"
        elif key == "triggers.token_requests":
            figure = triggers.get("token_requests")
            met = None if figure is None else figure == 1
            shown = str(figure)
        elif key == "triggers.max_connections":
            figure = triggers.get("max_connections")
            limit = triggers.get("pool_limit")
            met = None if figure is None else figure <= limit
            shown = f"{figure} (limit {limit})"
        elif key == "triggers.rss_per_trigger_kib":
            figure, peer = triggers.get("rss_per_trigger_kib"), triggers.get("peer_rss_per_trigger_kib")
            met = None if figure is None or peer is None else figure <= peer
            shown = f"{_num(figure)} KiB vs peer {_num(peer)} KiB"
        elif key == "import.sestek_ms":
            figure = imports.get("sestek_ms")
            met = None if figure is None else figure <= 30
            shown = f"+{_num(figure)} ms"
            if imports.get("sestek_pct_of_baseline") is not None:
                shown += f" ({_num(imports['sestek_pct_of_baseline'], 2)}% of airflow.sdk)"
        elif key == "poll_cpu.ratio":
            cpu = results.get("poll_cpu") or {}
            figure = cpu.get("ratio")
            met = None if figure is None else figure <= 1.5
            shown = (
                f"{_num(cpu.get('ours_us_per_poll'), 0)} us vs {_num(cpu.get('bare_us_per_poll'), 0)} us: "
                f"{figure:.2f}x (C={cpu.get('concurrency')})"
                if figure is not None
                else "n/a"
            )
        else:
            figure = tokens.get("token_requests")
            met = None if figure is None else figure == 1
            shown = f"{figure} for {tokens.get('operator_runs')} runs + {_num(tokens.get('polls'))} polls"
        out.append({"target": text, "figure": shown, "met": met})
    return out


def table(results: dict[str, Any]) -> str:
    """The side-by-side table: our figure, the peer's, and the ratio."""
    upload, triggers, imports, tokens = (results.get(k) or {} for k in ("upload", "triggers", "import", "tokens"))
    rows: list[tuple[str, str, str, str, str]] = []
    mib = upload.get("file_mib")
    if upload:
        _upload_rows(rows, upload, mib)
    if results.get("upload_s3"):
        _upload_s3_rows(rows, results["upload_s3"])
    _trigger_rows(rows, triggers)
    if imports:
        rows.append(
            (
                "DAG parse: import of the operator + sensor modules over airflow.sdk (ms)",
                f"+{_num(imports.get('sestek_ms'))}",
                f"dbt Cloud +{_num(imports.get('dbt_ms'))}",
                f"airflow.sdk alone {_num(imports.get('baseline_ms'), 0)}",
                _ratio(imports.get("sestek_ms"), imports.get("dbt_ms"), False),
            )
        )
    if tokens:
        rows.append(
            (
                f"Tokens: {tokens.get('operator_runs')} operator runs + {_num(tokens.get('polls'))} polls, "
                "token requests",
                str(tokens.get("token_requests")),
                "",
                "",
                "",
            )
        )
    _evaluation_rows(rows, results.get("evaluation") or {})
    cpu = results.get("poll_cpu") or {}
    if cpu:
        rows.append(
            (
                f"Async progress poll: client CPU per poll (µs), {cpu.get('concurrency')} pollers, "
                f"{_num(cpu.get('polls'))} polls x {cpu.get('rounds')} rounds",
                _num(cpu.get("ours_us_per_poll"), 0),
                f"bare aiohttp {_num(cpu.get('bare_us_per_poll'), 0)}",
                "",
                _ratio(cpu.get("ours_us_per_poll"), cpu.get("bare_us_per_poll"), False),
            )
        )
    lines = [
        "| measure | ours | peer | other | ours vs peer |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(lines)


def _upload_rows(rows: list[tuple[str, str, str, str, str]], upload: dict[str, Any], mib: Any) -> None:
    rows.append(
        (
            f"Upload {mib} MiB: throughput (MiB/s)",
            _num(upload.get("sestek_mib_s"), 0),
            f"curl {_num(upload.get('curl_mib_s'), 0)}",
            f"requests/HttpHook {_num(upload.get('naive_mib_s'), 0)}",
            f"{_ratio(upload.get('sestek_mib_s'), upload.get('curl_mib_s'), True)} than curl",
        )
    )
    rows.append(
        (
            f"Upload {mib} MiB: client peak RSS growth (MiB)",
            _num(upload.get("sestek_rss_growth_mib")),
            f"curl {_num(upload.get('curl_rss_growth_mib'))}",
            f"requests/HttpHook {_num(upload.get('naive_rss_growth_mib'))}",
            f"{_ratio(upload.get('sestek_rss_growth_mib'), upload.get('naive_rss_growth_mib'), False)} than requests",
        )
    )


def _upload_s3_rows(rows: list[tuple[str, str, str, str, str]], s3: dict[str, Any]) -> None:
    mib, block = s3.get("file_mib"), s3.get("block_mib")
    rows.append(
        (
            f"Upload {mib} MiB from s3:// (moto): throughput (MiB/s)",
            _num(s3.get("sestek_mib_s"), 0),
            f"bare s3fs read, {block} MiB blocks {_num(s3.get('s3fs_blocks_read_mib_s'), 0)}",
            f"s3fs defaults {_num(s3.get('s3fs_read_mib_s'), 0)}; local file {_num(s3.get('local_mib_s'), 0)}",
            f"{_ratio(s3.get('sestek_mib_s'), s3.get('s3fs_blocks_read_mib_s'), True)} than the bare read",
        )
    )
    rows.append(
        (
            f"Upload {mib} MiB from s3:// (moto): client peak RSS growth (MiB)",
            _num(s3.get("sestek_rss_growth_mib")),
            f"bare s3fs read, {block} MiB blocks {_num(s3.get('s3fs_blocks_read_rss_growth_mib'))}",
            f"s3fs defaults {_num(s3.get('s3fs_read_rss_growth_mib'))}; local file "
            f"{_num(s3.get('local_rss_growth_mib'))}",
            f"{_ratio(s3.get('sestek_rss_growth_mib'), s3.get('s3fs_blocks_read_rss_growth_mib'), False)} than the "
            "bare read",
        )
    )


def _trigger_rows(rows: list[tuple[str, str, str, str, str]], triggers: dict[str, Any]) -> None:
    for entry in triggers.get("by_n", []):
        n, ours, peer = entry["n"], entry.get("sestek") or {}, entry.get("peer") or {}
        label = f"Triggers N={n:,}"
        for title, key, digits, better in (
            ("loop lag p50 / p99 (ms)", None, 1, False),
            ("RSS per trigger (KiB)", "rss_per_trigger_kib", 1, False),
            ("polls/s achieved (configured)", "polls_per_s", 0, True),
            ("most TCP connections open", "max_connections", 0, False),
            ("token requests", "token_requests", 0, None),
            ("CPU of the trigger process (% of a core)", "cpu_pct", 0, False),
        ):
            if key is None:
                ours_text = f"{_num(ours.get('loop_lag_p50_ms'))} / {_num(ours.get('loop_lag_p99_ms'))}"
                peer_text = f"{_num(peer.get('loop_lag_p50_ms'))} / {_num(peer.get('loop_lag_p99_ms'))}"
                ratio = _ratio(ours.get("loop_lag_p99_ms"), peer.get("loop_lag_p99_ms"), False) + " (p99)"
            else:
                ours_text, peer_text = _num(ours.get(key), digits), _num(peer.get(key), digits)
                if key == "polls_per_s":
                    configured = _num(ours.get("configured_polls_per_s"), 0)
                    ours_text, peer_text = f"{ours_text} ({configured})", f"{peer_text} ({configured})"
                ratio = "" if better is None else _ratio(ours.get(key), peer.get(key), better)
            rows.append((f"{label}: {title}", ours_text, f"HttpSensorTrigger {peer_text}", "", ratio))


def targets_table(results: dict[str, Any]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for item in evaluate(results):
        met = {True: "yes", False: "**no**", None: "n/a"}[item["met"]]
        lines.append(f"| {item['target']} | {item['figure']} | {met} |")
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('ram_gib')} GiB RAM, {machine.get('os')}; "
        f"Python {machine.get('python')}, Airflow {machine.get('airflow')}, airflow-provider-sestek "
        f"{machine.get('provider')}, apache-airflow-providers-http {machine.get('http_provider')}, "
        f"apache-airflow-providers-dbt-cloud {machine.get('dbt_cloud_provider')}, aiohttp {machine.get('aiohttp')}, "
        f"requests {machine.get('requests')}, curl {machine.get('curl')}"
    )


def _evaluation_rows(rows: list[tuple[str, str, str, str, str]], ev: dict[str, Any]) -> None:
    """Batched evaluation against the naive loop (one ``hook.ask`` per case), and its memory at 10x the cases."""
    if not ev:
        return
    n = _num(ev.get("cases"))
    rows.append(
        (
            f"Evaluation of {n} golden-set cases: wall time (s)",
            _num(ev.get("batched_s"), 2),
            f"one ask() per case {_num(ev.get('naive_s'), 2)}",
            "",
            _ratio(ev.get("batched_s"), ev.get("naive_s"), False),
        )
    )
    rows.append(
        (
            f"Evaluation of {n} cases: inference requests",
            _num(ev.get("batched_requests")),
            f"one ask() per case {_num(ev.get('naive_requests'))}",
            "",
            _ratio(ev.get("batched_requests"), ev.get("naive_requests"), False),
        )
    )
    rows.append(
        (
            f"Evaluation: peak RSS growth (MiB), {n} cases / {_num(ev.get('batched_10x_cases'))} cases from JSONL",
            f"{_num(ev.get('batched_rss_growth_mib'))} / {_num(ev.get('batched_10x_rss_growth_mib'))}",
            f"one ask() per case, {n} cases: {_num(ev.get('naive_rss_growth_mib'))}",
            "",
            "",
        )
    )
