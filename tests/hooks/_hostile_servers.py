"""Tiny hostile loopback servers for the hook tests (raw sockets, one thread per connection)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

CLIENT_ID, CLIENT_SECRET = "hostile-client", "hostile-secret-XYZZY-1234"
TOKEN = "hostile-token-QWERTY-5678"


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """Read one request's head and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def token_answer() -> bytes:
    body = json.dumps({"access_token": TOKEN, "expires_in": 3600, "scope": "SestekAI_External"}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class RawServer:
    """Calls ``handler(conn, head, body)`` for every request; token requests get a good token unless ``own_token``."""

    def __init__(self, handler: Callable[[socket.socket, bytes, bytes], Any], own_token: bool = False) -> None:
        self.handler = handler
        self.own_token = own_token
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        self._thread.join(2)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                head, body = read_request(conn)
                if not head:
                    return
                self.heads.append(head)
                self.bodies.append(body)
                if not self.own_token and b"/connect/token" in head.split(b"\r\n")[0]:
                    conn.sendall(token_answer())
                    continue
                if self.handler(conn, head, body) is not True:  # True: keep the connection
                    return
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


def conn_env(url: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "sestek",
            "host": url,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": {"tenant": "acme", **extra},
        }
    )
