"""
The glue between :class:`~._wire.Reply` and aiohttp: turning replies into responses, writing bytes
aiohttp would not write (no ``Content-Type``, a short body, no framing at all) straight to the
transport, and the per-request keys the middlewares share.
"""

from __future__ import annotations

import logging
import time
from email.utils import formatdate
from typing import Any, Protocol

from aiohttp import web

from ._model import RecordedRequest
from ._redaction import Redactor
from ._wire import REASONS, Reply

__all__ = [
    "PACE",
    "RECORD",
    "WRITTEN",
    "Listeners",
    "NoRequestBytes",
    "WireResponse",
    "new_record",
    "raw_head",
    "raw_header",
    "render",
    "write_raw",
]

SERVER = "SestekEmulator/1.0"


def _key(name: str, kind: type) -> Any:
    # Typed request keys exist from aiohttp 3.13 on (plain strings warn there); older releases take strings.
    factory = getattr(web, "RequestKey", None)
    return name if factory is None else factory(name, kind)


#: The request's :class:`RecordedRequest` (API requests only).
RECORD = _key("sestek_record", RecordedRequest)
#: A ``drip`` fault whose pace the response body goes out at.
PACE = _key("sestek_pace", object)
#: Set once the response went out some other way than the handler's return value (or not at all).
WRITTEN = _key("sestek_written", bool)


class WireResponse(web.Response):
    """
    A response that still knows the :class:`Reply` it was made from, so a fault can distort it.

    :param reply: the reply.
    :param final: no ``when="after"`` fault applies (a rejected upload form, a denied upload).
    """

    def __init__(self, reply: Reply, *, final: bool = False) -> None:
        headers = [("Server", SERVER), *reply.headers]
        if reply.content_type is not None:
            headers.append(("Content-Type", reply.content_type))
        super().__init__(status=reply.status, body=reply.body or None, headers=headers)
        self.reply = reply
        self.final = final


def header_text(value: str) -> str:
    """
    A header value the way the standard library's server spelled it: its raw bytes read as Latin-1.

    :param value: the value as aiohttp decoded it (UTF-8 with surrogate escapes).
    """
    # Recorded headers and bearer tokens are compared byte for byte with what the client put on the wire.
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def raw_header(request: web.BaseRequest, name: str) -> str:
    """
    A request header as received (see :func:`header_text`), ``""`` when absent; what handlers check.

    The record's copy may be redacted, so credentials are always read from the request itself.

    :param request: the request.
    :param name: the header name (any case).
    """
    # The same pick as RecordedRequest.header on an unredacted record: the last value of the first
    # spelling of the name (duplicate headers are a hostile client's game the emulator must not lose).
    lowered, values = name.lower(), dict(request.headers.items())
    for key, value in values.items():
        if key.lower() == lowered:
            return header_text(value)
    return ""


def new_record(request: web.BaseRequest, endpoint: str, redactor: Redactor) -> RecordedRequest:
    """
    The record of an API request as it arrives (the body's fields are filled in later, redacted too).

    :param request: the request.
    :param endpoint: which API it is for.
    :param redactor: what the record may keep of the credentials it carries.
    """
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return RecordedRequest(
        method=request.method,
        path=request.path,
        endpoint=endpoint,
        headers=redactor.headers({name: header_text(value) for name, value in request.headers.items()}),
        time=time.time(),
        query=redactor.query(request.query_string),
        client_port=int(peer[1]) if peer else 0,
    )


def raw_head(status: int, reply: Reply, *, length: int | None, close: bool) -> bytes:
    """
    A response head written by hand.

    :param status: the status.
    :param reply: where the content type and headers come from.
    :param length: the ``Content-Length`` to announce, ``None`` for none.
    :param close: announce ``Connection: close``.
    """
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}", f"Server: {SERVER}", f"Date: {formatdate(usegmt=True)}"]
    if reply.content_type:
        lines.append(f"Content-Type: {reply.content_type}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.extend(f"{name}: {value}" for name, value in reply.headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def write_raw(request: web.BaseRequest, data: bytes, *, close: bool = True) -> web.StreamResponse:
    """
    Put ``data`` on the wire as it is and close the connection.

    :param request: the request.
    :param data: the bytes.
    :param close: close the connection afterwards (always, unless the caller goes on writing).
    :return: a response for aiohttp to return; writing it fails quietly on the closed connection.
    """
    request[WRITTEN] = True
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.write(data)
        if close:
            transport.close()
    return web.Response()


def render(request: web.BaseRequest, reply: Reply, *, final: bool = False, close: bool = False) -> web.StreamResponse:
    """
    The response for ``reply``.

    :param request: the request.
    :param reply: the reply.
    :param final: no ``when="after"`` fault applies to it.
    :param close: close the connection after it.
    """
    if reply.content_type is None and reply.body:
        # aiohttp labels every body it sends; a body without Content-Type only goes out by hand.
        record = request.get(RECORD)
        if record is not None:
            record.status = reply.status
        return write_raw(request, raw_head(reply.status, reply, length=len(reply.body), close=True) + reply.body)
    response = WireResponse(reply, final=final)
    if close:
        response.force_close()
    return response


class NoRequestBytes(logging.Filter):
    """
    Keeps a request's bytes out of the server's log records.

    aiohttp logs a request it cannot parse with the parser's exception, whose text quotes the offending
    bytes: an ``Authorization`` header, a form with ``client_secret``. The record keeps its message and
    the exception's type; the text and the traceback go (the client got them in its 400 already).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            record.msg = f"{record.getMessage()}: {type(exc).__name__} (not shown: the request may carry credentials)"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


class Listeners(Protocol):
    """What routes may ask of the server about where it listens (implemented by :class:`._server.Server`)."""

    @property
    def url(self) -> str:
        """The API's base URL."""

    def started_foreign_url(self) -> str | None:
        """The foreign listener's base URL if it runs, else ``None`` (never starts it)."""

    async def foreign_base(self) -> str:
        """The foreign listener's base URL, starting it first if needed (on the server's loop)."""
