"""
Calls the emulator makes itself: training callbacks (with their own token request) and the fetches of
loopback ``dataUrls`` (their documents are what :mod:`._answers` indexes besides the uploads).

They use the standard library's ``urllib`` on daemon threads, never the event loop that serves the
API: a slow or dead receiver must not stall the emulator, and these calls stay independent of the
HTTP stack the server runs on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._lifecycle import Event
from ._model import CallbackAttempt, CallbackInfo
from ._wire import json_bytes

if TYPE_CHECKING:
    import urllib.request

__all__ = ["Outbound"]

_log = logging.getLogger(__name__)

_TOKEN_PATH = "/connect/token"
_URL_FETCH_LIMIT = 64 << 20
_URL_FETCH_TIMEOUT = 2.0
_CALLBACK_TIMEOUT = 5.0


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    # Imported on first use: urllib.request is slow to import and only callbacks and data URLs need it.
    import urllib.request

    # No proxy: the emulator is an offline tool, and a proxy from the environment would hijack loopback calls.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _describe(exc: Exception) -> str:
    """
    What went wrong, without the exception's text: urllib quotes the URL (with any password in it).

    :param exc: what a callback attempt raised.
    """
    reason = getattr(exc, "reason", None)  # URLError wraps the socket error
    if isinstance(reason, OSError) and reason.strerror:
        return f"{type(exc).__name__}: {reason.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__} (details not shown: they may quote the callback URL)"


class _TokenRefused(Exception):
    """The identity service refused the callback's token request."""


@dataclass(eq=False)
class _Fetch:
    """The data-URL fetches of one generation: the thread, and url -> file of what arrived."""

    urls: int
    thread: threading.Thread | None = None
    documents: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Outbound:
    """
    Sends callbacks and fetches data URLs on threads of their own.

    :param stopping: set when the emulator stops; pending fetches give up.
    :param on_attempt: told about every finished callback attempt and whether it succeeded.
    :param redact_url: how a URL is shown in the log (credentials in it replaced).
    """

    def __init__(
        self,
        stopping: threading.Event,
        on_attempt: Callable[[CallbackAttempt, bool], None],
        redact_url: Callable[[str], str],
    ) -> None:
        self._stopping = stopping
        self._on_attempt = on_attempt
        self._redact_url = redact_url
        self._lock = threading.Lock()
        self._fetches: dict[str, _Fetch] = {}

    def fire(self, events: list[Event]) -> None:
        """
        Deliver each event's callback in the background.

        :param events: what the lifecycle returned.
        """
        for event in events:
            threading.Thread(target=self._deliver, args=(event,), name="sestek-emulator-callback", daemon=True).start()

    def _deliver(self, event: Event) -> None:
        import urllib.error
        import urllib.request

        info = event.callback
        status: int | None = None
        error: str | None = None
        token: str | None = None
        try:
            if info.identity_address and info.client_id:
                try:
                    token = self._token(info)
                except urllib.error.HTTPError as exc:
                    # The callback itself was never sent: its status stays unknown.
                    raise _TokenRefused(f"callback token request answered HTTP {exc.code}") from None
            payload = {
                "modelId": event.model_id,
                "event": event.event,
                "trainingStatus": event.training_status,
                "inferenceStatus": event.inference_status,
                "percent": event.percent,
            }
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            request = urllib.request.Request(info.address, data=json_bytes(payload), headers=headers, method="POST")  # noqa: S310 - the user's callback URL
            with _opener().open(request, timeout=_CALLBACK_TIMEOUT) as response:
                status = int(response.status)
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"callback answered HTTP {exc.code}"
        except _TokenRefused as exc:
            error = str(exc)
        except Exception as exc:  # a broken receiver must never take the emulator down
            error = _describe(exc)
        succeeded = error is None and status is not None and 200 <= status < 300
        attempt = CallbackAttempt(
            event.model_id, event.event, info.address, status, error, token is not None, time.time()
        )
        self._on_attempt(attempt, succeeded)
        _log.debug("callback %s for %s: status=%s error=%s", event.event, event.model_id, status, error)

    @staticmethod
    def _token(info: CallbackInfo) -> str:
        import urllib.request

        assert info.identity_address is not None
        token_url = info.identity_address.rstrip("/")
        if not token_url.endswith(_TOKEN_PATH):
            token_url += _TOKEN_PATH
        form = urllib.parse.urlencode(
            {
                "client_id": info.client_id or "",
                "client_secret": info.client_secret or "",
                "grant_type": "client_credentials",
            }
        ).encode("ascii")
        request = urllib.request.Request(  # noqa: S310 - the user's callback identity URL
            token_url, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST"
        )
        with _opener().open(request, timeout=_CALLBACK_TIMEOUT) as response:
            body = json.loads(response.read())
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise _TokenRefused("callback token response has no access_token")
        return token

    def fetch(self, key: str, urls: list[str], directory: str) -> None:
        """
        Start fetching ``urls`` into ``directory`` for one generation's answer index.

        :param key: the generation's ``experiment_id``.
        :param urls: loopback data URLs (the emulator is offline: nothing else is fetched).
        :param directory: the generation's upload directory.
        """
        fetch = _Fetch(len(urls))
        fetch.thread = threading.Thread(
            target=self._fetch, args=(fetch, urls, directory), name="sestek-emulator-fetch", daemon=True
        )
        with self._lock:
            self._fetches[key] = fetch
        fetch.thread.start()

    def _fetch(self, fetch: _Fetch, urls: list[str], directory: str) -> None:
        for index, url in enumerate(urls):
            if self._stopping.is_set():
                return
            path = os.path.join(directory, f"url-{index:04d}.txt")
            try:
                os.makedirs(directory, exist_ok=True)
                with _opener().open(url, timeout=_URL_FETCH_TIMEOUT) as response, open(path, "wb") as out:
                    remaining = _URL_FETCH_LIMIT
                    while remaining > 0:
                        chunk = response.read(min(1 << 20, remaining))
                        if not chunk:
                            break
                        out.write(chunk)
                        remaining -= len(chunk)
            except Exception as exc:  # an unreachable data URL is the client's problem, not the server's
                _log.debug("fetching data URL %s failed: %s", self._redact_url(url), type(exc).__name__)
                continue
            with fetch.lock:
                fetch.documents[url] = path

    def documents(self, key: str) -> list[tuple[str, str]]:
        """
        ``(url, file)`` of every data URL fetched for a generation, once its fetches ended (blocking).

        :param key: the generation's ``experiment_id``.
        """
        with self._lock:
            fetch = self._fetches.get(key)
        if fetch is None:
            return []
        if fetch.thread is not None:
            fetch.thread.join(timeout=fetch.urls * (_URL_FETCH_TIMEOUT + 1))
        with fetch.lock:
            return list(fetch.documents.items())

    def forget(self) -> None:
        """Drop every generation's fetch record (reset); a fetch still running finishes unseen."""
        with self._lock:
            self._fetches.clear()
