"""Interim 1xx answers (RFC 9110 15.2: a client must ignore them) before the real answer."""

from __future__ import annotations

import json
import socket

import pytest

from airflow_provider_sestek.api import TrainingStatus
from tests.hooks._hostile_servers import RawServer, conn_env
from tests.hooks._sides import PROGRESS

PROG = json.dumps({"percent": 5, "trainingStatus": "Training", "inferenceStatus": None}).encode()


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize(
    "interim", [b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\n"]
)
def test_interim_1xx_then_200_is_the_answer(monkeypatch: pytest.MonkeyPatch, side: str, interim: bytes) -> None:
    def handler(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(interim + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PROG) + PROG)
        return True

    with RawServer(handler) as server:
        monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", conn_env(server.url, timeout=3))
        progress = PROGRESS[side]("m")  # sync: SestekApiError "answered HTTP 103: (empty body)"
    assert progress.training_status is TrainingStatus.TRAINING and progress.percent == 5
