"""
One client of the S3 upload benchmark in its own process: ``python -m benchmarks.upload_s3_client --mode M``.

``sestek``: ``SestekHook.submit_training`` of the ``s3://`` URL (checked, read in blocks and streamed to the
sink). ``s3fs-blocks``: the peer, a bare read of the same object through the same filesystem in the same
blocks as ours (``fs.open(key, "rb", block_size=REMOTE_BLOCK_SIZE)``, read 512 KiB at a time and thrown
away): what getting the bytes out costs at all. ``s3fs``: the same with s3fs's defaults (50 MiB blocks).
``local``: ``submit_training`` of the same bytes from a local file.

Prints one JSON line: seconds, RSS after warm-up (the baseline: imports, token, filesystem and its
credentials, one metadata request) and the peak RSS during the measured call, in KiB. The peak is reset to
the baseline (``/proc/self/clear_refs``) right before the call so start-up never counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from benchmarks._common import proc_status, reset_peak_rss, setup_child_airflow_home

READ_SIZE = 512 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_s3_client")
    parser.add_argument("--mode", choices=("sestek", "s3fs", "s3fs-blocks", "local"), required=True)
    parser.add_argument("--url", required=True, help="s3://conn_id@bucket/key of the object")
    parser.add_argument("--file", required=True, help="the same bytes in a local file")
    args = parser.parse_args(argv)
    setup_child_airflow_home()
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    path = ObjectStoragePath(args.url)
    send: Callable[[], int]
    if args.mode.startswith("s3fs"):
        from airflow_provider_sestek.hooks.object_storage import REMOTE_BLOCK_SIZE

        fs = path.fs
        size = int(fs.info(path.path)["size"])  # the warm-up: filesystem, credentials, one request
        options = {"block_size": REMOTE_BLOCK_SIZE} if args.mode == "s3fs-blocks" else {}

        def send() -> int:
            total = 0
            with fs.open(path.path, "rb", **options) as handle:
                while chunk := handle.read(READ_SIZE):
                    total += len(chunk)
            return total

    else:
        from airflow_provider_sestek.hooks.sestek import SestekHook

        hook = SestekHook("sestek_default", retry_limit=0)
        hook.get_token()  # the token request is not part of the upload
        source = args.url if args.mode == "sestek" else args.file
        # The warm-up: for s3:// it creates the filesystem and its credentials, as the check of a first file does.
        (checked,) = hook.prepare_training("bench-upload", "bench", data_files=[source]).data_files
        size = checked.size

        def send() -> int:
            hook.submit_training("bench-upload", "bench", data_files=[source])
            return size

    base = proc_status()["VmRSS"]
    reset = reset_peak_rss()
    start = time.perf_counter()
    sent = send()
    seconds = time.perf_counter() - start
    peak = proc_status()["VmHWM"]
    if sent != size:
        raise SystemExit(f"{args.mode}: {sent} of {size} bytes")
    print(
        json.dumps(
            {"mode": args.mode, "seconds": seconds, "bytes": size, "rss_base_kib": base, "rss_peak_kib": peak}
            | {"peak_reset": reset}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
