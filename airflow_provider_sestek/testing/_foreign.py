"""
The foreign origin ``redirect`` faults send clients to.

A client's hardening is only testable if there is another origin that would happily take its
credentials: this listener records whatever reaches it and answers plausible success, so a client
that follows a redirect there is caught both by what it sent and by what it then believed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.parse
import uuid
from typing import Any

from aiohttp import web

from ._api_train import FormError, read_form
from ._endpoints import API_ROUTES, Endpoint
from ._http import new_record
from ._model import FOREIGN_TOKEN, SCOPE_TRAINING, RecordedRequest
from ._runner import ServerThread
from ._state import EmulatorState

__all__ = ["ForeignListener"]

_BODY_LIMIT = 16 << 20


class ForeignListener:
    """
    Records every request and answers it with a plausible success of the endpoint it was meant for.

    :param state: where the records go (:meth:`EmulatorState.foreign_requests`), redacted like the API's.
    """

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        #: ``(host, port)`` while serving.
        self.address: tuple[str, int] | None = None
        self._starting: asyncio.Lock | None = None

    async def start(
        self, server: ServerThread, fallback_host: str, ssl_context: ssl.SSLContext | None
    ) -> tuple[str, int]:
        """
        Serve on ``server``'s loop unless already serving; returns the bound address.

        :param server: the emulator's server thread.
        :param fallback_host: where to listen when 127.0.0.2 is not available.
        :param ssl_context: the emulator's, so the foreign origin speaks the same scheme.
        """
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.address is None:
                app = self.app()
                # Another host, not just another port: some clients compare only host names when deciding
                # whether a redirect stays on the same site. 127.0.0.2 is loopback on Linux but not on macOS.
                try:
                    _, host, port = await server.serve(app, "127.0.0.2", 0, ssl_context)
                except OSError:
                    _, host, port = await server.serve(app, fallback_host, 0, ssl_context)
                self.address = (host, port)
        return self.address

    def stopped(self) -> None:
        """The server thread it ran on stopped: the next :meth:`start` serves anew."""
        self.address = None
        self._starting = None

    def app(self) -> web.Application:
        """The listener's application: the real API's paths, so requests are named as there, and any other."""
        app = web.Application(client_max_size=_BODY_LIMIT)
        for endpoint, _, path in API_ROUTES:
            app.router.add_resource(path, name=f"foreign-{endpoint}").add_route("*", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.route.resource.name if request.match_info.route.resource else None
        endpoint = Endpoint(name.removeprefix("foreign-")) if name else Endpoint.OTHER
        record = new_record(request, endpoint, self._state.redactor)
        self._state.record_foreign(record)
        close = False
        form: dict[str, list[str]] = {}
        try:
            form = await self._read_body(request, record)
        except ConnectionError as exc:
            record.error = f"client disconnected: {exc}"
            raise
        except (FormError, web.HTTPRequestEntityTooLarge) as exc:
            # A broken form is still answered, but the rest of the stream is unusable.
            record.error = f"unreadable body: {exc}"
            close = True
        finally:
            record.body_size = request.content.total_bytes
        record.status = 200
        # Answered from what the client sent, never from the record: echoing a marker back would let
        # anyone on loopback compare it with a marker seen elsewhere and confirm a guessed secret.
        response = web.json_response(self._answer(endpoint, form))
        if close:
            response.force_close()
        return response

    async def _read_body(self, request: web.Request, record: RecordedRequest) -> dict[str, list[str]]:
        """Fill in the record (redacted) and return the form as sent (empty for other bodies)."""
        redactor = self._state.redactor
        media_type = request.content_type
        if media_type == "multipart/form-data":
            # Sizes and hashes are what the record needs; the foreign origin never keeps uploads on disk.
            form, record.files = await read_form(request, None)
            record.form = redactor.form(form)
            return form
        body = await request.read()
        if media_type == "application/x-www-form-urlencoded":
            # Decoded verbatim (then redacted like any record): a leaked secret shows up as its marker.
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            record.form = redactor.form(form)
            return form
        if media_type == "application/json" or media_type.endswith("+json"):
            try:
                record.json = redactor.json(json.loads(body))
            except (ValueError, RecursionError):
                pass
        return {}

    @staticmethod
    def _answer(endpoint: str, form: dict[str, list[str]]) -> dict[str, Any]:
        if endpoint == "token":
            return {"access_token": FOREIGN_TOKEN, "expires_in": 86400, "token_type": "Bearer", "scope": SCOPE_TRAINING}
        if endpoint == "progress":
            return {"percent": 100, "trainingStatus": "Completed", "inferenceStatus": "Running"}
        if endpoint == "train":
            model_id = (form.get("modelId") or ["foreign-model"])[0]
            return {
                "name": model_id,
                "description": (form.get("projectName") or ["foreign"])[0],
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
