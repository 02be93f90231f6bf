"""
One upload client in its own process: ``python -m benchmarks.upload_client --mode sestek|naive ...``.

Prints one JSON line: seconds, bytes of the file, RSS after imports (the baseline) and the peak RSS
while sending, both in KiB. The peak is reset to the baseline (``/proc/self/clear_refs``) right before
the upload so start-up never counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks._common import proc_status, reset_peak_rss, setup_child_airflow_home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_client")
    parser.add_argument("--mode", choices=("sestek", "naive"), required=True)
    parser.add_argument("--url", required=True, help="base URL of the sink")
    parser.add_argument("--file", required=True)
    args = parser.parse_args(argv)
    setup_child_airflow_home()
    size = os.path.getsize(args.file)

    if args.mode == "sestek":
        from airflow_provider_sestek.hooks.sestek import SestekHook

        hook = SestekHook("sestek_default", retry_limit=0)
        hook.get_token()  # the token request is not part of the upload

        def send() -> None:
            hook.submit_training("bench-upload", "bench", data_files=[args.file])

    else:
        import requests

        from airflow_provider_sestek import api

        url = api.train_url(args.url)

        def send() -> None:
            # What HttpHook.run(..., files=...) does: requests builds the multipart body in memory.
            with open(args.file, "rb") as handle:
                response = requests.post(
                    url,
                    data={"modelId": "bench-upload", "projectName": "bench"},
                    files={"dataFiles": (os.path.basename(args.file), handle, "text/plain")},
                    headers={"Authorization": "Bearer sink-token"},
                    timeout=(10, 600),
                )
            response.raise_for_status()

    base = proc_status()["VmRSS"]
    reset = reset_peak_rss()
    start = time.perf_counter()
    send()
    seconds = time.perf_counter() - start
    peak = proc_status()["VmHWM"]
    print(
        json.dumps(
            {"mode": args.mode, "seconds": seconds, "bytes": size, "rss_base_kib": base, "rss_peak_kib": peak}
            | {"peak_reset": reset}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
