"""
The admin endpoints under ``/_emulator/``: what :class:`~._client.EmulatorClient` drives an emulator
in another process with. They are never recorded as API requests and never faulted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._model import Fault

if TYPE_CHECKING:
    from .emulator import SestekEmulator

__all__ = ["add_routes", "state"]

_PREFIX = "/_emulator/"
_OK = {"ok": True}
_Action = Callable[["SestekEmulator", web.Request, Any], Awaitable[Any]]


def state(emu: SestekEmulator) -> dict[str, Any]:
    """
    Everything ``GET /_emulator/state`` reports.

    :param emu: the emulator.
    """
    trainings = emu.trainings
    address = emu._foreign_listener().address
    foreign_url = emu._base_url(*address) if address is not None else None
    foreign = [r.to_dict() for r in emu._foreign_listener().requests]
    with emu._lock:
        return {
            "url": emu.url if emu._server is not None else None,
            "foreign_url": foreign_url,
            "foreign_requests": foreign,
            "tenant": emu._tenant,
            "counters": dict(emu._counters),
            "request_count": len(emu._requests),
            "trainings": {model_id: t.to_dict() for model_id, t in trainings.items()},
            "faults": [f.to_dict() for f in emu._faults_queue().faults()],
            "callbacks": [
                {
                    "model_id": a.model_id,
                    "event": a.event,
                    "address": a.address,
                    "status": a.status,
                    "error": a.error,
                    "authenticated": a.authenticated,
                    "time": a.time,
                }
                for a in emu._callback_attempts
            ],
            "fail_models": sorted(emu._trainings.fail_models),
            "config": {
                "advance": emu._trainings.advance,
                "steps_per_poll": emu._trainings.steps_per_poll,
                "seconds_per_step": emu._trainings.seconds_per_step,
                "status_case": emu._trainings.status_case,
                "token_lifetime": emu._tokens.lifetime,
                "token_prefix": emu._tokens.prefix,
            },
        }


async def _health(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    return _OK


async def _state(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    return emu.state()


async def _requests(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    endpoint = request.query.get("endpoint")
    since = int(request.query.get("since", "0"))
    return [r.to_dict() for r in emu.requests[since:] if endpoint in (None, r.endpoint)]


async def _add_fault(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise ValueError("a fault must be a JSON object")
    fault = Fault.from_dict(payload)
    if fault.kind == "redirect" and fault.location is None:
        # Started now, so the URL is known before the first redirect and the redirect is not slower.
        await emu._foreign_base()
    emu._queue_fault(fault)
    return _OK


async def _clear_faults(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    emu.clear_faults()
    return _OK


async def _faults(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    return [f.to_dict() for f in emu.faults]


async def _foreign(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    return {"url": await emu._foreign_base(), "requests": [r.to_dict() for r in emu.foreign_requests]}


async def _reset(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    emu.reset()
    return _OK


async def _lifecycle(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise ValueError("lifecycle must be a JSON object")
    statuses = payload.get("statuses")
    if statuses is not None and not isinstance(statuses, list):
        raise ValueError("statuses must be a list or null")
    emu.set_lifecycle(model_id=payload.get("model_id"), statuses=statuses)
    return _OK


async def _fail_model(emu: SestekEmulator, request: web.Request, payload: Any) -> Any:
    if not isinstance(payload, dict) or not isinstance(payload.get("model_id"), str):
        raise ValueError("fail-model needs a JSON object with a string model_id")
    emu.fail_model(payload["model_id"], bool(payload.get("fail", True)))
    return _OK


_ROUTES: tuple[tuple[str, str, _Action], ...] = (
    ("GET", "health", _health),
    ("GET", "state", _state),
    ("GET", "requests", _requests),
    ("POST", "faults", _add_fault),
    ("DELETE", "faults", _clear_faults),
    ("GET", "faults", _faults),
    ("GET", "foreign", _foreign),
    ("POST", "reset", _reset),
    ("POST", "lifecycle", _lifecycle),
    ("POST", "fail-model", _fail_model),
)


def _json(status: int, value: Any) -> web.Response:
    return web.json_response(value, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def add_routes(app: web.Application, emu: SestekEmulator) -> None:
    """
    Add the admin routes to ``app``.

    :param app: the emulator's application.
    :param emu: the emulator they control.
    """

    def route(action: _Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.read()
                payload: Any = json.loads(body) if body.strip() else {}
                return _json(200, await action(emu, request, payload))
            except (ValueError, TypeError, web.HTTPRequestEntityTooLarge) as exc:
                return _json(400, {"error": str(exc)})

        return handler

    resources: dict[str, web.Resource] = {}
    for method, name, action in _ROUTES:
        resource = resources.get(name)
        if resource is None:
            resource = resources[name] = app.router.add_resource(f"{_PREFIX}{name}{{slash:/?}}", name=f"admin-{name}")
        resource.add_route(method, route(action))

    async def unknown(request: web.Request) -> web.StreamResponse:
        name = request.path[len(_PREFIX) :].rstrip("/")
        return _json(404, {"error": f"unknown admin endpoint {request.method} /_emulator/{name}"})

    for resource in resources.values():
        resource.add_route("*", unknown)
    app.router.add_resource(_PREFIX + "{name:.*}", name="admin-unknown").add_route("*", unknown)
