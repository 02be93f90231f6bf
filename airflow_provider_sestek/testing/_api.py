"""
The API's route table and the endpoints small enough to live beside it: the token service and
training progress. Uploads are in :mod:`._api_train`, inference in :mod:`._api_inference`.

The paths are spelled out here on purpose instead of imported from the provider's client: a wrong
path in the client must fail against the emulator, not be mirrored by it.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _admin, _api_inference, _api_train
from ._faults import fault_middleware
from ._http import RECORD, WRITTEN, new_record, render
from ._model import SCOPE_INFERENCE, SCOPE_TRAINING, RecordedRequest
from ._wire import ABP_INTERNAL, Reply, abp_error, json_reply, oidc_error, token_reply

if TYPE_CHECKING:
    from .emulator import SestekEmulator

__all__ = ["API_PATHS", "build_app"]

_log = logging.getLogger(__name__)

_API_PREFIX = "/sestekai-api/api/external/generative-question-answering-trainings"
#: ``(endpoint, method, path pattern)`` of every API route; a trailing slash is accepted as the API does.
API_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("token", "POST", "/connect/token"),
    ("train", "POST", _API_PREFIX + "/train{slash:/?}"),
    ("progress", "GET", _API_PREFIX + "/{model_id}/progress{slash:/?}"),
    ("inference", "POST", "/published/{segment}/v1/text/question-answering/inference{slash:/?}"),
)
API_PATHS = [(endpoint, path) for endpoint, _, path in API_ROUTES]
_ARRIVAL_COUNTERS = {"token": "token_requests", "progress": "progress_polls", "inference": "inference_requests"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _endpoint(request: web.Request) -> str | None:
    """The API endpoint a request is for; ``None`` for the admin endpoints (which are never recorded)."""
    resource = request.match_info.route.resource
    name = resource.name if resource is not None else None
    if name is None or name.startswith("admin"):
        return None
    return name


def _record_middleware(emu: SestekEmulator) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = _endpoint(request)
        if endpoint is None:
            return await handler(request)
        record = new_record(request, endpoint)
        if endpoint == "progress":
            record.model_id = urllib.parse.unquote(request.match_info["model_id"])
        elif endpoint == "inference":
            record.model_id = emu._inference_model_id(request.match_info["segment"])
        counter = _ARRIVAL_COUNTERS.get(endpoint)
        with emu._lock:
            emu._requests.append(record)
            if counter:
                emu._counters[counter] += 1
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
            with emu._lock:
                emu._counters["bytes_received"] += size
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


def _token(emu: SestekEmulator, record: RecordedRequest, request: web.Request, body: bytes) -> Reply:
    if request.content_type != "application/x-www-form-urlencoded":
        return oidc_error(400, "invalid_request", "The specified 'Content-Type' header is invalid.", "ID2082")
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    record.form = form

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
    authorization = record.header("Authorization") or ""
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
    scope = emu._tokens.scope_of(client_id, client_secret)
    if scope is None:
        return oidc_error(401, "invalid_client", "The specified client credentials are invalid.", "ID2055")
    return token_reply(emu._tokens.issue(client_id, scope), emu._tokens.lifetime, scope)


def _progress(emu: SestekEmulator, model_id: str) -> Reply:
    with emu._lock:
        answer, events = emu._trainings.poll(model_id)
    emu._outbound.fire(events)
    if answer is None:
        return abp_error(404, f"There is no training for the model ID: {model_id}")
    return json_reply(200, answer)


def _small_endpoint(emu: SestekEmulator, endpoint: str) -> Handler:
    """Token, progress and inference: small bodies, read into memory."""

    async def handler(request: web.Request) -> web.StreamResponse:
        record: RecordedRequest = request[RECORD]
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return render(request, abp_error(413, "Request body too large."), final=True, close=True)
        if endpoint == "token":
            return render(request, _token(emu, record, request, body))
        scope = SCOPE_TRAINING if endpoint == "progress" else SCOPE_INFERENCE
        denied = emu._tokens.authorize(record.header("Authorization") or "", scope)
        if denied is not None:
            return render(request, denied)
        if endpoint == "progress":
            assert record.model_id is not None
            return render(request, _progress(emu, record.model_id))
        return render(request, await _api_inference.answer(emu, request, record, body))

    return handler


def build_app(emu: SestekEmulator) -> web.Application:
    """
    The emulator's application: the API routes, the admin routes and a recorded 404 for anything else.

    :param emu: the emulator whose state the routes serve.
    """
    app = web.Application(middlewares=[_record_middleware(emu), fault_middleware(emu)], client_max_size=16 << 20)

    async def train(request: web.Request) -> web.StreamResponse:
        return await _api_train.train(emu, request)

    handlers: dict[str, Handler] = {"train": train}
    for endpoint, method, path in API_ROUTES:
        resource = app.router.add_resource(path, name=endpoint)
        resource.add_route(method, handlers.get(endpoint) or _small_endpoint(emu, endpoint))
        resource.add_route("*", _not_allowed(method))
    _admin.add_routes(app, emu)
    app.router.add_resource("/{tail:.*}", name="other").add_route("*", _other)
    return app
