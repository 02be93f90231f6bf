"""
The hostile-server faults: slow bodies, non-finite JSON numbers and the foreign origin of redirects.

A client's hardening is only testable if the emulator can be as hostile as a real network: a body
that trickles in a byte at a time, a number no strict JSON parser accepts, and a redirect to another
origin that would happily take the client's credentials. The foreign listener is that other origin:
it records whatever reaches it and answers success, so a client that follows a redirect there is
caught both by what it sent and by what it then believed.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO

from ._model import FOREIGN_TOKEN, SCOPE_TRAINING, RecordedRequest, record_of
from ._multipart import BodyReader, BodyTooLarge, MultipartParser, body_reader, parse_header_value

__all__ = ["ForeignListener", "drip", "non_finite_json"]

# How often a waiting drip looks at the emulator and the peer: the bound on how late it notices either.
_POLL_SLICE = 0.05
_FORM_LIMIT = 16 << 20


def non_finite_json(answer: Mapping[str, Any], literal: str) -> bytes:
    """
    Render a progress answer with ``percent`` written as ``literal`` (``Infinity``, ``NaN``, ``1e999``).

    :param answer: the progress answer; its own ``percent`` is replaced.
    :param literal: the raw JSON text of ``percent``.
    """
    rest = json.dumps({k: v for k, v in answer.items() if k != "percent"}, separators=(",", ":"), ensure_ascii=False)
    tail = "}" if rest == "{}" else "," + rest[1:]
    return ('{"percent":' + literal + tail).encode("utf-8")


def _peer_closed(connection: socket.socket) -> bool:
    if isinstance(connection, ssl.SSLSocket):
        # TLS sockets cannot peek; there the next failing write reveals the close instead.
        return False
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def drip(connection: socket.socket, wfile: Any, body: bytes | None, delay: float, stopping: threading.Event) -> bool:
    """
    Send ``body`` one byte every ``delay`` seconds; ``None`` sends spaces until the peer or the emulator goes.

    :param connection: the socket, watched for the peer closing it.
    :param wfile: where the bytes go (the handler's unbuffered writer).
    :param body: the bytes, or ``None`` for an endless body.
    :param delay: seconds before each byte.
    :param stopping: set when the emulator stops: dripping ends within ``_POLL_SLICE``.
    :return: whether all of ``body`` was sent; ``False`` means the connection must not be reused.
    """
    index = 0
    while body is None or index < len(body):
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            if stopping.wait(min(remaining, _POLL_SLICE)) or _peer_closed(connection):
                return False
        try:
            wfile.write(b" " if body is None else body[index : index + 1])
        except OSError:
            return False
        index += 1
    return True


def _devnull(field_name: str, filename: str, index: int) -> tuple[BinaryIO, str]:
    # Sizes and hashes are what the record needs; the foreign origin never keeps uploads on disk.
    return open(os.devnull, "wb"), ""


class ForeignListener:
    """
    The other origin ``redirect`` faults point at: records every request and answers plausible success.

    It is served by the emulator's server class; only :meth:`_handle` is called from there.

    :param route: maps a path to the emulator's endpoint name (``token``, ``train``, ... or ``other``).
    """

    def __init__(self, route: Callable[[str], str]) -> None:
        self._route = route
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        endpoint = self._route(path)
        record = record_of(handler, path, query, endpoint)
        with self._lock:
            self._requests.append(record)
        reader: BodyReader | None = None
        try:
            reader = body_reader(handler.headers, handler.rfile)
            self._read_body(handler, reader, record)
        except ConnectionError as exc:
            record.error = f"client disconnected: {exc}"
            handler.close_connection = True
            return
        except ValueError as exc:
            # Bad framing or a broken form: still answered, but the rest of the stream is unusable.
            record.error = f"unreadable body: {exc}"
            handler.close_connection = True
        finally:
            if reader is not None:
                record.body_size = reader.consumed
        body = json.dumps(self._answer(endpoint, record)).encode("utf-8")
        record.status = 200
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler, reader: BodyReader, record: RecordedRequest) -> None:
        media_type, params = parse_header_value(handler.headers.get("Content-Type") or "")
        if media_type == "multipart/form-data":
            parser = MultipartParser(reader, params.get("boundary", ""), _devnull)
            try:
                record.form, record.files = parser.parse()
            finally:
                parser.abort()
            return
        try:
            body = reader.read_all(_FORM_LIMIT)
        except BodyTooLarge:
            reader.drain()
            return
        if media_type == "application/x-www-form-urlencoded":
            # Decoded verbatim: a leaked secret must show up here exactly as the client sent it.
            record.form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        elif media_type == "application/json" or media_type.endswith("+json"):
            try:
                record.json = json.loads(body)
            except ValueError:
                pass

    @staticmethod
    def _answer(endpoint: str, record: RecordedRequest) -> dict[str, Any]:
        if endpoint == "token":
            return {"access_token": FOREIGN_TOKEN, "expires_in": 86400, "token_type": "Bearer", "scope": SCOPE_TRAINING}
        if endpoint == "progress":
            return {"percent": 100, "trainingStatus": "Completed", "inferenceStatus": "Running"}
        if endpoint == "train":
            model_id = (record.form.get("modelId") or ["foreign-model"])[0]
            return {
                "name": model_id,
                "description": (record.form.get("projectName") or ["foreign"])[0],
                "status": 0,
                "statusMessage": "Initialized",
                "percent": 0,
                "trainingParams": {},
                "endpoints": [],
                "projectId": str(uuid.uuid4()),
                "experimentDatasetMappings": [],
                "id": str(uuid.uuid4()),
            }
        if endpoint == "inference":
            return {
                "result": [
                    {
                        "answer": "An answer from the foreign origin.",
                        "standalone_question": "",
                        "docs": [],
                        "logs": {"origin": "foreign"},
                        "cache_hit": None,
                    }
                ]
            }
        return {}
