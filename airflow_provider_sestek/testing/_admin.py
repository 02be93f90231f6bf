"""
The admin endpoints under ``/_emulator/``: what :class:`~._client.EmulatorClient` drives an emulator
in another process with. They are never recorded as API requests and never faulted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._faults import Fault, needs_foreign_listener
from ._http import Listeners
from ._redaction import for_admin
from ._state import EmulatorState

__all__ = ["add_routes"]

_PREFIX = "/_emulator/"
_OK = {"ok": True}
_Action = Callable[[EmulatorState, Listeners, web.Request, Any], Awaitable[Any]]


async def _health(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    return _OK


async def _state(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    return state.describe(listeners.url, listeners.started_foreign_url())


async def _requests(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    endpoint = request.query.get("endpoint")
    since = int(request.query.get("since", "0"))
    return [r.to_dict() for r in state.requests()[since:] if endpoint in (None, r.endpoint)]


async def _add_fault(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise ValueError("a fault must be a JSON object")
    fault = Fault.from_dict(payload)
    if needs_foreign_listener(fault):
        # Started now, so the URL is known before the first redirect and the redirect is not slower.
        await listeners.foreign_base()
    state.add_fault(fault)
    return _OK


async def _clear_faults(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    state.clear_faults()
    return _OK


async def _faults(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    return [f.to_dict() for f in state.faults()]


async def _foreign(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    return {"url": await listeners.foreign_base(), "requests": [r.to_dict() for r in state.foreign_requests()]}


async def _reset(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    state.reset()
    return _OK


async def _lifecycle(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise ValueError("lifecycle must be a JSON object")
    statuses = payload.get("statuses")
    if statuses is not None and not isinstance(statuses, list):
        raise ValueError("statuses must be a list or null")
    state.set_lifecycle(payload.get("model_id"), statuses)
    return _OK


async def _fail_model(state: EmulatorState, listeners: Listeners, request: web.Request, payload: Any) -> Any:
    if not isinstance(payload, dict) or not isinstance(payload.get("model_id"), str):
        raise ValueError("fail-model needs a JSON object with a string model_id")
    state.fail_model(payload["model_id"], bool(payload.get("fail", True)))
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
    # Markers lose their keyed part here: whoever reaches this unauthenticated API can also put a guess
    # into a recorded request, and comparing the two markers would confirm the guess.
    return web.json_response(value, status=status, dumps=lambda v: for_admin(json.dumps(v, ensure_ascii=False)))


def add_routes(app: web.Application, state: EmulatorState, listeners: Listeners) -> None:
    """
    Add the admin routes to ``app``.

    :param app: the emulator's application.
    :param state: the state they control.
    :param listeners: where the emulator listens.
    """

    def route(action: _Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.read()
                payload: Any = json.loads(body) if body.strip() else {}
                return _json(200, await action(state, listeners, request, payload))
            except (ValueError, TypeError, ArithmeticError, RecursionError, web.HTTPRequestEntityTooLarge) as exc:
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
