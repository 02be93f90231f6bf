"""
A plain HTTP sink for the upload benchmark: ``python -m benchmarks.sink --ready-file F``.

It answers the token endpoint with a fixed token, reads every other request body as fast as it can
and throws the bytes away, then answers with a small "experiment" object. The same server for every
client, so what differs between runs is the client alone. Standard library only, loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "sink-token"
_BUFFER = 1 << 20


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0
        self.requests = 0
        self.last_body = 0

    def add(self, size: int) -> None:
        with self.lock:
            self.bytes += size
            self.requests += 1
            self.last_body = size


STATS = _Stats()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BenchSink/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _drain(self) -> int:
        buffer = memoryview(bytearray(_BUFFER))
        total = 0
        if (self.headers.get("Transfer-Encoding") or "").lower().endswith("chunked"):
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                left = size
                while left:
                    got = self.rfile.readinto(buffer[: min(left, _BUFFER)])
                    if not got:
                        raise ConnectionError("client went away mid-chunk")
                    left -= got
                total += size
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            got = self.rfile.readinto(buffer[: min(left, _BUFFER)])
            if not got:
                raise ConnectionError("client went away mid-body")
            left -= got
            total += got
        return total

    def _answer(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        size = self._drain()
        if self.path.endswith("/connect/token"):
            self._answer(200, {"access_token": TOKEN, "expires_in": 86400, "token_type": "Bearer", "scope": "bench"})
            return
        STATS.add(size)
        self._answer(
            200,
            {"name": "bench", "status": 0, "statusMessage": "Initialized", "percent": 0, "id": str(uuid.uuid4())},
        )

    def do_GET(self) -> None:
        self._drain()
        if self.path == "/_sink/stats":
            with STATS.lock:
                self._answer(200, {"bytes": STATS.bytes, "requests": STATS.requests, "last_body": STATS.last_body})
            return
        self._answer(404, {"error": {"message": "not found"}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sink")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    temp = args.ready_file + ".tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(f"http://127.0.0.1:{server.server_address[1]}\n")
    os.replace(temp, args.ready_file)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
