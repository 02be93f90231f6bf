"""
open_connections stops counting a connection the client closed, even while the emulator still holds a
request of it (a delay fault).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from airflow_provider_sestek.testing import Fault, SestekEmulator


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_gives_up_on_a_delayed_answer_is_not_counted_open(sestek_emulator: SestekEmulator) -> None:
    # The README: open_connections is "client connections open now, to check that your code closes what
    # it opens". A client that times out on a delay fault and closes its socket did close it, but the
    # count stayed 1 for the whole delay (aiohttp keeps the connection listed until its handler ends).
    sestek_emulator.add_fault(Fault(endpoint="token", kind="delay", delay=5))
    body = b"client_id=train-client&client_secret=train-secret&grant_type=client_credentials"
    sock = socket.create_connection(("127.0.0.1", sestek_emulator.port))
    sock.sendall(
        b"POST /connect/token HTTP/1.1\r\nHost: e\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert _wait_for(lambda: sestek_emulator.open_connections == 1, 2)
    sock.close()
    assert _wait_for(lambda: sestek_emulator.open_connections == 0, 2), sestek_emulator.open_connections
