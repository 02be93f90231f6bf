"""
Fault injection: the queue of pending :class:`~._model.Fault` objects and the aiohttp middleware that
delivers them, down to the hostile ones (bytes dripping in, bodies cut short, redirects to a foreign
origin, tokens no header can carry, numbers no strict JSON parser accepts).

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._http import PACE, RECORD, WRITTEN, WireResponse, raw_head, render, write_raw
from ._model import Fault, RecordedRequest
from ._wire import JSON, Reply, json_bytes, non_finite_json, status_fault_reply, token_reply

if TYPE_CHECKING:
    from .emulator import SestekEmulator

__all__ = ["FaultQueue", "apply_before", "deliver_before", "fault_middleware", "pause"]

# How often a waiting fault looks at the emulator and the peer: the bound on how late it notices either.
_POLL_SLICE = 0.05
_SMALL_BODY_LIMIT = 16 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(eq=False)
class _Pending:
    fault: Fault
    remaining: int | None


class FaultQueue:
    """Faults not used up yet, matched in the order they were added. Callers hold the emulator's lock."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def add(self, fault: Fault) -> None:
        """
        Queue a fault.

        :param fault: the fault.
        """
        self._pending.append(_Pending(fault, fault.count))

    def clear(self) -> None:
        """Forget every fault."""
        self._pending.clear()

    def faults(self) -> list[Fault]:
        """The pending faults, oldest first."""
        return [pending.fault for pending in self._pending]

    def take(self, endpoint: str, model_id: str | None, when: str, filtered: bool | None) -> Fault | None:
        """
        Use up the first matching fault.

        :param endpoint: the endpoint of the request.
        :param model_id: the model the request is about, if known.
        :param when: ``before`` or ``after``.
        :param filtered: ``True`` only considers faults with a model filter, ``False`` only those without.
        """
        for index, pending in enumerate(self._pending):
            fault = pending.fault
            if fault.when != when or fault.endpoint not in ("any", endpoint):
                continue
            if filtered is not None and filtered != (fault.model_id is not None):
                continue
            if fault.model_id is not None and fault.model_id != model_id:
                continue
            if pending.remaining is not None:
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._pending[index]
            return fault
        return None


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
    """Delivers faults on behalf of one emulator."""

    def __init__(self, emu: SestekEmulator) -> None:
        self._emu = emu

    async def before(self, request: web.Request, record: RecordedRequest, fault: Fault) -> web.StreamResponse | None:
        """Deliver a ``when="before"`` fault; ``None`` for ``delay`` and ``drip`` (handling goes on)."""
        record.fault = f"{fault.kind}:before"
        if fault.kind == "delay":
            await pause(fault.delay, self._emu._stopping)
            return None
        if fault.kind == "drip":
            request[PACE] = fault
            return None
        if fault.kind == "drop":
            return _drop(request)
        if fault.kind == "odd_token":
            # The token's scope follows the client id, so the form is read even though it is not checked.
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                body = b""
            record.form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return await self.deliver(request, record, fault, None)

    async def deliver(
        self, request: web.Request, record: RecordedRequest, fault: Fault, real: Reply | None
    ) -> web.StreamResponse:
        """Send what ``fault`` answers instead of ``real`` (``None`` for a ``when="before"`` fault)."""
        emu = self._emu
        fallback = real if real is not None else Reply(500)
        if fault.kind == "drip":
            return await drip(request, fault, fallback, emu._stopping)
        if fault.kind == "drop":
            return _drop(request)
        if fault.kind == "delay":
            await pause(fault.delay, emu._stopping)
            return render(request, fallback)
        if fault.kind == "malformed":
            return render(request, Reply(200, b'{"percent": 50, "trainingStatus": ', JSON))
        if fault.kind == "truncated":
            body = real.body if real is not None and len(real.body) > 1 else json_bytes({"emulator": "x" * 64})
            record.status = 200
            head = raw_head(200, Reply(200, content_type=JSON), length=len(body), close=True)
            return write_raw(request, head + body[: len(body) // 2])
        if fault.kind == "redirect":
            query = f"?{record.query}" if record.query else ""
            location = fault.location or await emu._foreign_base() + record.path + query
            reply = Reply(fault.status or 307, headers=[("Location", location)])
        elif fault.kind == "raw":
            assert fault.raw_body is not None
            reply = Reply(fault.status or 200, fault.raw_body.encode("utf-8"), fault.content_type or None)
        elif fault.kind == "odd_token":
            assert fault.value is not None
            client_id = (record.form.get("client_id") or [""])[0]
            scope = emu._tokens.accept(client_id, fault.value)
            reply = token_reply(fault.value, emu._tokens.lifetime, scope)
        elif fault.kind == "non_finite":
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
        training = self._emu.trainings.get(model_id) if model_id is not None else None
        if training is None:
            return {"percent": 0, "trainingStatus": self._emu._trainings.case("Training"), "inferenceStatus": None}
        return {"percent": 0, "trainingStatus": training.status, "inferenceStatus": training.inference_status}


async def apply_before(
    emu: SestekEmulator, request: web.Request, model_id: str | None, filtered: bool | None
) -> web.StreamResponse | None:
    """
    Take and deliver a ``when="before"`` fault for this request, if one matches.

    :param emu: the emulator.
    :param request: an API request.
    :param model_id: the model it is about.
    :param filtered: see :meth:`FaultQueue.take`.
    :return: the fault's response, or ``None`` when the request is to be handled (no fault, ``delay``, ``drip``).
    """
    record: RecordedRequest = request[RECORD]
    fault = emu._take_fault(record.endpoint, model_id, "before", filtered)
    if fault is None:
        return None
    return await deliver_before(emu, request, record, fault)


async def deliver_before(
    emu: SestekEmulator, request: web.Request, record: RecordedRequest, fault: Fault
) -> web.StreamResponse | None:
    """
    Deliver a ``when="before"`` fault already taken from the queue.

    :param emu: the emulator.
    :param request: the request.
    :param record: its record.
    :param fault: the fault.
    :return: the fault's response, or ``None`` for ``delay`` and ``drip`` (handling goes on).
    """
    return await _Deliverer(emu).before(request, record, fault)


def fault_middleware(emu: SestekEmulator) -> Any:
    """
    The middleware that delivers faults to the API endpoints.

    :param emu: the emulator whose fault queue is used.
    """
    deliverer = _Deliverer(emu)

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        record: RecordedRequest | None = request.get(RECORD)
        # Unknown paths and wrong methods (the "*" routes) are answered without faults, as before.
        if record is None or record.endpoint == "other" or request.match_info.route.method == "*":
            return await handler(request)
        if record.endpoint != "train":
            early = await apply_before(emu, request, record.model_id, None)
        else:
            # The model id of an upload is only known once its form is read: the handler takes those.
            early = await apply_before(emu, request, None, False)
        if early is not None:
            return early
        response = await handler(request)
        if not isinstance(response, WireResponse):
            return response
        fault = None if response.final else emu._take_fault(record.endpoint, record.model_id, "after", None)
        if fault is not None:
            record.fault = f"{fault.kind}:after"
            return await deliverer.deliver(request, record, fault, response.reply)
        pace: Fault | None = request.get(PACE)
        if pace is not None:
            return await drip(request, pace, response.reply, emu._stopping)
        return response

    return faults
