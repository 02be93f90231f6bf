"""
The API's application and the endpoints small enough to live beside it: the token service and
training progress. Uploads are in :mod:`._api_train`, inference in :mod:`._api_inference`, the paths
in :mod:`._endpoints`. Every handler works on the :class:`~._state.EmulatorState` it is given.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import _admin, _api_inference, _api_train
from ._endpoints import API_ROUTES, Endpoint
from ._fault_delivery import fault_middleware
from ._http import RECORD, WRITTEN, Listeners, NoRequestBytes, new_record, raw_header, render
from ._model import SCOPE_INFERENCE, SCOPE_TRAINING, RecordedRequest
from ._state import EmulatorState
from ._wire import ABP_INTERNAL, Reply, abp_error, json_reply, oidc_error, token_reply

__all__ = ["build_app"]

_log = logging.getLogger(__name__)
_log.addFilter(NoRequestBytes())  # an emulator bug's traceback may quote what the request carried

_ARRIVAL_COUNTERS = {
    Endpoint.TOKEN: "token_requests",
    Endpoint.PROGRESS: "progress_polls",
    Endpoint.INFERENCE: "inference_requests",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _endpoint(request: web.Request) -> Endpoint | None:
    """The API endpoint a request is for; ``None`` for the admin endpoints (which are never recorded)."""
    resource = request.match_info.route.resource
    name = resource.name if resource is not None else None
    if name is None or name.startswith("admin"):
        return None
    return Endpoint(name)


def _record_middleware(state: EmulatorState) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = _endpoint(request)
        if endpoint is None:
            return await handler(request)
        record = new_record(request, endpoint, state.redactor)
        if endpoint is Endpoint.PROGRESS:
            record.model_id = urllib.parse.unquote(request.match_info["model_id"])
        elif endpoint is Endpoint.INFERENCE:
            record.model_id = state.inference_model_id(request.match_info["segment"])
        state.record(record, _ARRIVAL_COUNTERS.get(endpoint))
        request[RECORD] = record
        try:
            response = await handler(request)
        except (ConnectionError, TimeoutError) as exc:
            record.error = f"connection error: {exc}"
            raise
        except web.HTTPException:
            raise
        except Exception:
            _log.exception("Sestek emulator failed on %s %s", request.method, request.path)
            record.error = "emulator error"
            response = render(request, abp_error(500, ABP_INTERNAL), close=True)
        finally:
            size = request.content.total_bytes
            record.body_size = size
            state.count("bytes_received", size)
        if not request.get(WRITTEN):
            # Recorded before writing: a test may inspect the record the instant its response arrives.
            record.status = response.status
        return response

    return record


def _not_allowed(method: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return render(request, Reply(405, headers=[("Allow", method)]))

    return handler


async def _other(request: web.Request) -> web.StreamResponse:
    return render(request, Reply(404))


def _token(state: EmulatorState, record: RecordedRequest, request: web.Request, body: bytes) -> Reply:
    if request.content_type != "application/x-www-form-urlencoded":
        return oidc_error(400, "invalid_request", "The specified 'Content-Type' header is invalid.", "ID2082")
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    record.form = state.redactor.form(form)

    def single(name: str) -> str | None:
        values = form.get(name)
        return values[0] if values else None

    for name, values in form.items():
        if len(values) > 1:
            return oidc_error(400, "invalid_request", f"The '{name}' parameter cannot be repeated.", "ID2011")
    grant_type = single("grant_type")
    if not grant_type:
        return oidc_error(400, "invalid_request", "The mandatory 'grant_type' parameter is missing.", "ID2029")
    if grant_type != "client_credentials":
        return oidc_error(
            400, "unsupported_grant_type", "The specified 'grant_type' parameter is not supported.", "ID2032"
        )
    client_id = single("client_id")
    client_secret = single("client_secret")
    authorization = raw_header(request, "Authorization")
    if authorization[:6].lower() == "basic ":
        if client_id or client_secret:
            return oidc_error(400, "invalid_request", "Multiple client credentials cannot be specified.", "ID2087")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except ValueError:
            return oidc_error(400, "invalid_request", "The specified client credentials are malformed.", "ID2055")
        raw_id, _, raw_secret = decoded.partition(":")
        client_id, client_secret = urllib.parse.unquote_plus(raw_id), urllib.parse.unquote_plus(raw_secret)
    if not client_id:
        return oidc_error(400, "invalid_request", "The mandatory 'client_id' parameter is missing.", "ID2029")
    if not client_secret:
        return oidc_error(400, "invalid_request", "The mandatory 'client_secret' parameter is missing.", "ID2029")
    scope = state.tokens.scope_of(client_id, client_secret)
    if scope is None:
        return oidc_error(401, "invalid_client", "The specified client credentials are invalid.", "ID2055")
    return token_reply(state.tokens.issue(client_id, scope), state.tokens.lifetime, scope)


def _progress(state: EmulatorState, model_id: str) -> Reply:
    seen = state.progress(model_id)
    if seen is None:
        return abp_error(404, f"There is no training for the model ID: {model_id}")
    return json_reply(200, seen.answer())


def _small_endpoint(state: EmulatorState, endpoint: Endpoint) -> Handler:
    """Token, progress and inference: small bodies, read into memory."""

    async def handler(request: web.Request) -> web.StreamResponse:
        record: RecordedRequest = request[RECORD]
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return render(request, abp_error(413, "Request body too large."), final=True, close=True)
        if endpoint is Endpoint.TOKEN:
            return render(request, _token(state, record, request, body))
        scope = SCOPE_TRAINING if endpoint is Endpoint.PROGRESS else SCOPE_INFERENCE
        denied = state.tokens.authorize(raw_header(request, "Authorization"), scope)
        if denied is not None:
            return render(request, denied)
        if endpoint is Endpoint.PROGRESS:
            assert record.model_id is not None
            return render(request, _progress(state, record.model_id))
        return render(request, await _api_inference.answer(state, request, record, body))

    return handler


def build_app(state: EmulatorState, listeners: Listeners) -> web.Application:
    """
    The emulator's application: the API routes, the admin routes and a recorded 404 for anything else.

    :param state: what the routes serve.
    :param listeners: where the server listens (the admin routes and ``redirect`` faults ask).
    """
    middlewares = [_record_middleware(state), fault_middleware(state, listeners)]
    app = web.Application(middlewares=middlewares, client_max_size=16 << 20)

    async def train(request: web.Request) -> web.StreamResponse:
        return await _api_train.train(state, listeners, request)

    handlers: dict[Endpoint, Handler] = {Endpoint.TRAIN: train}
    for endpoint, method, path in API_ROUTES:
        resource = app.router.add_resource(path, name=endpoint.value)
        resource.add_route(method, handlers.get(endpoint) or _small_endpoint(state, endpoint))
        resource.add_route("*", _not_allowed(method))
    _admin.add_routes(app, state, listeners)
    app.router.add_resource("/{tail:.*}", name=Endpoint.OTHER.value).add_route("*", _other)
    return app
