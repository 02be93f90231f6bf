"""
Fault delivery: the aiohttp middleware that delivers pending :class:`~._faults.Fault` objects (the
fault model and its queue are in :mod:`._faults`), down to the hostile ones (bytes dripping in, bodies
cut short, redirects to a foreign origin, tokens no header can carry, numbers no strict JSON parser
accepts).

``when="before"`` faults replace the handling; ``when="after"`` ones let the request take effect and
then distort or replace its :class:`~._wire.Reply`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._endpoints import Endpoint
from ._faults import Fault, FaultKind, FaultWhen
from ._http import PACE, RECORD, WRITTEN, Listeners, WireResponse, raw_head, render, write_raw
from ._model import RecordedRequest
from ._state import EmulatorState
from ._wire import JSON, Reply, json_bytes, non_finite_json, status_fault_reply, token_reply

__all__ = ["apply_before", "deliver_before", "fault_middleware", "pause"]

# How often a waiting fault looks at the emulator and the peer: the bound on how late it notices either.
_POLL_SLICE = 0.05
_SMALL_BODY_LIMIT = 16 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def pause(seconds: float, stopping: threading.Event, request: web.BaseRequest | None = None) -> bool:
    """
    Sleep, but wake up when the emulator stops or the peer goes away.

    :param seconds: how long.
    :param stopping: the emulator's stop flag.
    :param request: watch this request's connection too.
    :return: whether the whole time passed.
    """
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if stopping.is_set():
            return False
        transport = request.transport if request is not None else None
        if request is not None and (transport is None or transport.is_closing()):
            return False
        await asyncio.sleep(min(remaining, _POLL_SLICE))
    await asyncio.sleep(0)  # a delay below the clock's resolution must still let other requests run
    return not stopping.is_set()


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    # No status is recorded: nothing was answered.
    request[WRITTEN] = True
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def drip(request: web.BaseRequest, fault: Fault, reply: Reply, stopping: threading.Event) -> web.StreamResponse:
    """
    Send ``reply`` with its body one byte every ``fault.delay`` seconds (or spaces forever when endless).

    :param request: the request.
    :param fault: the ``drip`` fault.
    :param reply: the real answer.
    :param stopping: the emulator's stop flag; dripping ends within a poll slice of it.
    """
    record: RecordedRequest | None = request.get(RECORD)
    if record is not None:
        record.status = reply.status
    request[WRITTEN] = True
    transport = request.transport
    if fault.endless:
        # No framing at all (no length, no chunks), so only a hand-written head can say so.
        write_raw(request, raw_head(reply.status, reply, length=None, close=True), close=False)
        while await pause(fault.delay, stopping, request):
            if transport is None or transport.is_closing():
                break
            transport.write(b" ")
        if transport is not None:
            transport.close()
        return web.Response()
    response = web.StreamResponse(status=reply.status, headers=WireResponse(reply).headers)
    response.content_length = len(reply.body)
    try:
        await response.prepare(request)
        for index in range(len(reply.body)):
            if not await pause(fault.delay, stopping, request):
                if transport is not None:
                    transport.close()
                return response
            await response.write(reply.body[index : index + 1])
        await response.write_eof()
    except ConnectionError:
        pass
    return response


def _retry_after(reply: Reply, fault: Fault) -> Reply:
    if fault.retry_after is not None:
        value = fault.retry_after
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        reply.headers.append(("Retry-After", text))
    return reply


class _Deliverer:
    """
    Delivers faults on behalf of one emulator.

    :param state: its state.
    :param listeners: where it listens (a ``redirect`` fault's default target is the foreign listener).
    """

    def __init__(self, state: EmulatorState, listeners: Listeners) -> None:
        #: The state faults are taken from.
        self.state = state
        self._listeners = listeners

    async def before(self, request: web.Request, record: RecordedRequest, fault: Fault) -> web.StreamResponse | None:
        """Deliver a ``when="before"`` fault; ``None`` for ``delay`` and ``drip`` (handling goes on)."""
        record.fault = f"{fault.kind}:before"
        if fault.kind is FaultKind.DELAY:
            await pause(fault.delay, self.state.stopping)
            return None
        if fault.kind is FaultKind.DRIP:
            request[PACE] = fault
            return None
        if fault.kind is FaultKind.DROP:
            return _drop(request)
        if fault.kind is FaultKind.ODD_TOKEN:
            # The token's scope follows the client id, so the form is read even though it is not checked.
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                body = b""
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            record.form = self.state.redactor.form(form)  # client_id is kept: the scope is read from it
        return await self.deliver(request, record, fault, None)

    async def deliver(
        self, request: web.Request, record: RecordedRequest, fault: Fault, real: Reply | None
    ) -> web.StreamResponse:
        """Send what ``fault`` answers instead of ``real`` (``None`` for a ``when="before"`` fault)."""
        state = self.state
        kind = FaultKind(fault.kind)
        fallback = real if real is not None else Reply(500)
        if kind is FaultKind.DRIP:
            return await drip(request, fault, fallback, state.stopping)
        if kind is FaultKind.DROP:
            return _drop(request)
        if kind is FaultKind.DELAY:
            await pause(fault.delay, state.stopping)
            return render(request, fallback)
        if kind is FaultKind.MALFORMED:
            return render(request, Reply(200, b'{"percent": 50, "trainingStatus": ', JSON))
        if kind is FaultKind.TRUNCATED:
            body = real.body if real is not None and len(real.body) > 1 else json_bytes({"emulator": "x" * 64})
            record.status = 200
            head = raw_head(200, Reply(200, content_type=JSON), length=len(body), close=True)
            return write_raw(request, head + body[: len(body) // 2])
        if kind is FaultKind.REDIRECT:
            # raw_path: the path and query as sent, not as aiohttp decoded them (``+``, ``%23``, ``%0d``).
            location = fault.location or await self._listeners.foreign_base() + request.raw_path
            reply = Reply(fault.status or 307, headers=[("Location", location)])
        elif kind is FaultKind.RAW:
            assert fault.raw_body is not None
            reply = Reply(fault.status or 200, fault.raw_body.encode("utf-8"), fault.content_type or None)
        elif kind is FaultKind.ODD_TOKEN:
            assert fault.value is not None
            client_id = (record.form.get("client_id") or [""])[0]
            scope = state.tokens.accept(client_id, fault.value)
            reply = token_reply(fault.value, state.tokens.lifetime, scope)
        elif kind is FaultKind.NON_FINITE:
            assert fault.value is not None
            reply = Reply(200, non_finite_json(self._progress_answer(record.model_id, real), fault.value), JSON)
        else:
            reply = status_fault_reply(fault.status or 503, fault.body, fault.message)
        return render(request, _retry_after(reply, fault))

    def _progress_answer(self, model_id: str | None, real: Reply | None) -> dict[str, Any]:
        if real is not None and real.status == 200:
            try:
                parsed = json.loads(real.body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
        # Nothing real to distort (a "before" fault, or the real answer was an error): report the
        # model's current state without advancing it.
        seen = self.state.observe(model_id) if model_id is not None else None
        if seen is None:
            return {"percent": 0, "trainingStatus": self.state.case("Training"), "inferenceStatus": None}
        return {"percent": 0, "trainingStatus": seen.status, "inferenceStatus": seen.inference_status}


async def apply_before(
    deliverer: _Deliverer, request: web.Request, model_id: str | None, filtered: bool | None
) -> web.StreamResponse | None:
    """
    Take and deliver a ``when="before"`` fault for this request, if one matches.

    :param deliverer: the emulator's deliverer.
    :param request: an API request.
    :param model_id: the model it is about.
    :param filtered: see :meth:`FaultQueue.take`.
    :return: the fault's response, or ``None`` when the request is to be handled (no fault, ``delay``, ``drip``).
    """
    record: RecordedRequest = request[RECORD]
    fault = deliverer.state.take_fault(record.endpoint, model_id, FaultWhen.BEFORE, filtered)
    if fault is None:
        return None
    return await deliverer.before(request, record, fault)


async def deliver_before(
    state: EmulatorState, listeners: Listeners, request: web.Request, record: RecordedRequest, fault: Fault
) -> web.StreamResponse | None:
    """
    Deliver a ``when="before"`` fault already taken from the queue.

    :param state: the emulator's state.
    :param listeners: where it listens.
    :param request: the request.
    :param record: its record.
    :param fault: the fault.
    :return: the fault's response, or ``None`` for ``delay`` and ``drip`` (handling goes on).
    """
    return await _Deliverer(state, listeners).before(request, record, fault)


def fault_middleware(state: EmulatorState, listeners: Listeners) -> Any:
    """
    The middleware that delivers faults to the API endpoints.

    :param state: the emulator's state, whose fault queue is used.
    :param listeners: where it listens.
    """
    deliverer = _Deliverer(state, listeners)

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        record: RecordedRequest | None = request.get(RECORD)
        # Unknown paths and wrong methods (the "*" routes) are answered without faults, as before.
        if record is None or record.endpoint == Endpoint.OTHER or request.match_info.route.method == "*":
            return await handler(request)
        if record.endpoint != Endpoint.TRAIN:
            early = await apply_before(deliverer, request, record.model_id, None)
        else:
            # The model id of an upload is only known once its form is read: the handler takes those.
            early = await apply_before(deliverer, request, None, False)
        if early is not None:
            return early
        response = await handler(request)
        if not isinstance(response, WireResponse):
            return response
        fault = None if response.final else state.take_fault(record.endpoint, record.model_id, FaultWhen.AFTER, None)
        if fault is not None:
            record.fault = f"{fault.kind}:after"
            return await deliverer.deliver(request, record, fault, response.reply)
        pace: Fault | None = request.get(PACE)
        if pace is not None:
            return await drip(request, pace, response.reply, state.stopping)
        return response

    return faults
