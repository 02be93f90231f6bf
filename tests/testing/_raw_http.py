"""Raw-socket helpers: hostile requests no well-behaved client library would send."""

from __future__ import annotations

import re
import socket

from tests.testing._helpers import TRAIN


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int | None, bytes, bytes]:
    """Send ``data`` and read one response; ``(status, head, body)``, status ``None`` when none came."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                head, sep, body = received.partition(b"\r\n\r\n")
                match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
                if sep and match and len(body) >= int(match.group(1)):
                    break
        except TimeoutError:
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    status = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return (int(status.group(1)) if status else None), head, body


def multipart_upload(port: int, token: str, body: bytes, boundary: str = "B") -> tuple[int | None, bytes, bytes]:
    head = (
        f"POST {TRAIN} HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return exchange(port, head.encode("ascii") + body)


def part(name: str, value: bytes, filename: bytes | None = None, headers: bytes = b"") -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name.encode() + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return b"--B\r\n" + disposition + b"\r\n" + headers + b"\r\n" + value + b"\r\n"
