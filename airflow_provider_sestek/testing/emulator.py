"""
An in-process emulator of the Sestek AI (Knovvu) external training API and its token service.

It serves the documented endpoints over real HTTP (optionally HTTPS) so DAGs, hooks and triggers can
be exercised offline, and it can misbehave on request (:class:`Fault`) the way a real gateway does.
It deliberately shares no code or constants with the provider's client: a wrong path or field name
in the client must fail against the emulator, not be mirrored by it.

Only the standard library is used and Airflow is never imported, so the emulator starts instantly and
works with any Airflow version.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hmac
import http
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from ._faults import ForeignListener, drip, non_finite_json
from ._model import (
    DEFAULT_CLIENTS,
    DEFAULT_INFERENCE_CLIENTS,
    DEFAULT_TENANT,
    DEFAULT_TOKEN_LIFETIME,
    DEFAULT_TOKEN_PREFIX,
    FAILED_STATUS,
    SCOPE_INFERENCE,
    SCOPE_TRAINING,
    TRAINING_STATUSES,
    CallbackAttempt,
    CallbackInfo,
    Fault,
    ReceivedFile,
    RecordedRequest,
    Training,
    record_of,
)
from ._multipart import (
    BadFraming,
    BodyReader,
    BodyTooLarge,
    IncompleteBody,
    MultipartError,
    MultipartParser,
    body_reader,
    parse_header_value,
)
from ._retrieval import NO_ANSWER, PassageIndex

if TYPE_CHECKING:
    import urllib.request

__all__ = ["SestekEmulator"]

_log = logging.getLogger(__name__)

# The real paths, spelled out here on purpose instead of imported from the client (see module doc).
_API_PREFIX = "/sestekai-api/api/external/generative-question-answering-trainings"
_TRAIN_PATH = _API_PREFIX + "/train"
_TOKEN_PATH = "/connect/token"
_PROGRESS_RE = re.compile(re.escape(_API_PREFIX) + r"/([^/]+)/progress/?")
_INFERENCE_RE = re.compile(r"/published/([^/]+)/v1/text/question-answering/inference/?")
_ADMIN_PREFIX = "/_emulator/"
_MODEL_ID_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_MODEL_ID_PATTERN = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_MODEL_ID_MAX = 63

_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_SMALL_BODY_LIMIT = 16 << 20
_INDEX_FILE_LIMIT = 4 << 20
_INDEX_MODEL_LIMIT = 8 << 20
_URL_FETCH_LIMIT = 64 << 20
_URL_FETCH_TIMEOUT = 2.0
_CALLBACK_TIMEOUT = 5.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_PERCENTS = {
    "initialized": 0,
    "pendingtraining": 5,
    "datasetuploading": 10,
    "dataprocessing": 20,
    "trainingstarted": 30,
    "training": 50,
    "trained": 80,
    "modeluploading": 90,
    "completed": 100,
}
_INFERENCE_STAGES: tuple[str | None, ...] = (None, "Pending", "Running")
_ABP_INVALID = "Your request is not valid!"
_ABP_INTERNAL = "An internal error occurred during your request!"
_OPENIDDICT_ERROR_URI = "https://documentation.openiddict.com/errors/{}"
_UNAVAILABLE = "Published pod is currently unavailable"
_ARRIVAL_COUNTERS = {"token": "token_requests", "progress": "progress_polls", "inference": "inference_requests"}


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    # Imported on first use: urllib.request is slow to import and only callbacks and data URLs need it.
    import urllib.request

    # No proxy: the emulator is an offline tool, and a proxy from the environment would hijack loopback calls.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _iso(moment: dt.datetime) -> str:
    # .NET serialises DateTime with 7 fractional digits; the seed page shows that form.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json_response(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> _Response:
    return _Response(status, _json_bytes(value), _JSON, list(headers))


def _abp_error(
    status: int,
    message: str,
    *,
    details: str | None = None,
    validation: list[dict[str, Any]] | None = None,
) -> _Response:
    error: dict[str, Any] = {
        "code": None,
        "message": message,
        "details": details,
        "data": {},
        "validationErrors": validation,
    }
    return _Response(status, _json_bytes({"error": error}), _JSON, [("_AbpErrorFormat", "true")])


def _abp_validation(errors: list[tuple[str, list[str]]]) -> _Response:
    details = "The following errors were detected during validation.\r\n" + "".join(
        f" - {message}\r\n" for message, _ in errors
    )
    validation = [{"message": message, "members": members} for message, members in errors]
    return _abp_error(400, _ABP_INVALID, details=details, validation=validation)


def _oidc_error(status: int, error: str, description: str, code: str) -> _Response:
    body = {"error": error, "error_description": description, "error_uri": _OPENIDDICT_ERROR_URI.format(code)}
    return _json_response(status, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])


def _problem(status: int) -> _Response:
    # ASP.NET answers a wrong media type with RFC 7807 problem details, not the ABP envelope.
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        "title": _REASONS.get(status, "Error"),
        "status": status,
        "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
    }
    return _Response(status, _json_bytes(body), "application/problem+json; charset=utf-8")


def _html_error(status: int) -> _Response:
    phrase = _REASONS.get(status, "Error")
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return _Response(status, page.encode("utf-8"), _HTML)


@dataclass(frozen=True, slots=True)
class _Lifecycle:
    statuses: tuple[str, ...]
    percents: tuple[int, ...]
    outcome: str | None  # "completed", "failed" or None when the sequence never terminates

    @property
    def last(self) -> int:
        return len(self.statuses) - 1

    @classmethod
    def build(cls, statuses: Sequence[str]) -> _Lifecycle:
        percents: list[int] = []
        previous = 0
        for status in statuses:
            lowered = status.lower()
            if lowered == "completed":
                value = 100
            elif lowered == "failed":
                value = previous  # a failed training freezes where it stopped
            else:
                value = max(previous, _PERCENTS.get(lowered, previous))
            percents.append(value)
            previous = value
        final = statuses[-1].lower()
        outcome = final if final in ("completed", "failed") else None
        return cls(tuple(statuses), tuple(percents), outcome)


def _failing(statuses: Sequence[str]) -> list[str]:
    """The sequence a model in ``fail_models`` goes through: it dies at the Training step."""
    lowered = [s.lower() for s in statuses]
    if "training" in lowered:
        return [*statuses[: lowered.index("training") + 1], FAILED_STATUS]
    base = list(statuses[:-1]) if lowered[-1] in ("completed", "failed") else list(statuses)
    return [*base, FAILED_STATUS]


@dataclass(eq=False)
class _Generation:
    """One training request of a model id (the first one or a retrain)."""

    number: int
    project_name: str
    files: tuple[ReceivedFile, ...]
    urls: tuple[str, ...]
    callback: CallbackInfo | None
    upload_dir: str | None
    project_id: str
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    created_mono: float = field(default_factory=time.monotonic)
    experiment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    step: int = 0
    publish_stage: int = 0
    completed_seen: bool = False
    polls: int = 0
    notified: bool = False
    url_documents: dict[str, str] = field(default_factory=dict)
    fetcher: threading.Thread | None = None
    index: PassageIndex | None = None
    index_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class _Model:
    model_id: str
    current: _Generation
    deployed: _Generation | None = None
    semantic_cache: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Event:
    model_id: str
    event: str
    training_status: str
    inference_status: str | None
    percent: int
    callback: CallbackInfo


@dataclass(eq=False)
class _ActiveFault:
    fault: Fault
    remaining: int | None


@dataclass(frozen=True, slots=True)
class _Token:
    scope: str
    client_id: str
    expires: float


class _Dropped(Exception):
    """The exchange ended without a normal response (a fault already answered or dropped it)."""


class _Dispatcher(Protocol):
    """What a :class:`_Server` hands each request to: the emulator, or the foreign listener of redirects."""

    def _handle(self, handler: _Handler) -> None: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], emulator: _Dispatcher, ssl_context: ssl.SSLContext | None, ipv6: bool
    ) -> None:
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.emulator = emulator
        self.ssl_context = ssl_context
        self.closing = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall start-up offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.closing:
            return
        connection = cast(socket.socket, request)
        if self.ssl_context is not None:
            # The handshake runs here, in the connection's own thread, so a stalled client cannot
            # block the accept loop.
            connection.settimeout(10)
            try:
                connection = self.ssl_context.wrap_socket(connection, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                _log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            if connection is not request:
                connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        """Shut every open keep-alive connection, so a stopped emulator really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SestekEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    # Idle keep-alive connections are reaped so thousands of one-shot clients cannot pile up threads.
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("%s %s", self.client_address[0], format % args)

    def _dispatch(self) -> None:
        self.server.emulator._handle(self)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_PATCH = _dispatch


class _Exchange:
    """One request/response on a connection: body access and the ways to answer."""

    def __init__(
        self, handler: _Handler, record: RecordedRequest | None, reader: BodyReader, stopping: threading.Event
    ) -> None:
        self.handler = handler
        self.record = record
        self.reader = reader
        self.stopping = stopping
        self.answered = False
        #: A ``drip`` fault: the response body goes out at its pace.
        self.pace: Fault | None = None

    def send(self, response: _Response, *, content_length: int | None = None, close: bool = False) -> None:
        handler = self.handler
        if not self.reader.done:
            # Unread body bytes would be parsed as the next request: this connection cannot be reused.
            handler.close_connection = True
        endless = self.pace is not None and self.pace.endless
        if close or endless:
            handler.close_connection = True
        length = len(response.body) if content_length is None else content_length
        lines = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, '')}",
            f"Server: {handler.server_version}",
            f"Date: {handler.date_time_string()}",
        ]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        if not endless:
            lines.append(f"Content-Length: {length}")
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if handler.close_connection and (content_length is None or endless):
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.answered = True
        if self.record is not None:
            # Recorded before writing: a test may inspect the record the instant its response arrives.
            self.record.status = response.status
            self.record.body_size = self.reader.consumed
        handler.log_request(response.status)
        if self.pace is None:
            handler.wfile.write(head + response.body)
            return
        handler.wfile.write(head)
        body = None if endless else response.body
        if not drip(handler.connection, handler.wfile, body, self.pace.delay, self.stopping):
            handler.close_connection = True

    def drop(self) -> None:
        self.answered = True
        self.handler.close_connection = True
        try:
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class SestekEmulator:
    """
    A fake Sestek AI server: token service, training, progress and published-model inference.

    :param host: interface to listen on.
    :param port: TCP port; 0 picks a free one (see :attr:`url`).
    :param tenant: the tenant name inference paths must start with (``/published/{tenant}-{modelId}``).
    :param clients: training clients (id -> secret), issued ``SestekAI_External`` tokens.
    :param inference_clients: inference clients (id -> secret), issued ``AIModule`` tokens.
    :param token_lifetime: seconds an access token lives (reported as ``expires_in`` and enforced).
    :param token_prefix: every issued access token starts with this, so tests can grep logs for leaks.
    :param advance: ``poll``: every progress call moves the training ``steps_per_poll`` statuses on
        (after answering); ``time``: the status follows the clock, ``seconds_per_step`` per status.
    :param steps_per_poll: statuses per progress call in ``poll`` mode.
    :param seconds_per_step: seconds per status in ``time`` mode.
    :param status_case: ``title`` reports statuses as given (``Completed``); ``lower`` lower-cases
        training and inference statuses (``completed``), as parts of the docs do.
    :param fail_models: model ids whose trainings fail at the ``Training`` step.
    :param data_dir: where uploads are written; default: a temporary directory removed by :meth:`stop`.
    :param certfile: PEM certificate (chain); serve HTTPS when given.
    :param keyfile: PEM private key, when not inside ``certfile``.
    :param max_recorded_requests: how many requests :attr:`requests` keeps (oldest dropped first);
        ``None`` keeps all, which a long benchmark may not want.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant: str = DEFAULT_TENANT,
        clients: Mapping[str, str] | None = None,
        inference_clients: Mapping[str, str] | None = None,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        token_prefix: str = DEFAULT_TOKEN_PREFIX,
        advance: str = "poll",
        steps_per_poll: int = 1,
        seconds_per_step: float = 1.0,
        status_case: str = "title",
        fail_models: Iterable[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        max_recorded_requests: int | None = 100_000,
    ) -> None:
        if advance not in ("poll", "time"):
            raise ValueError("advance must be 'poll' or 'time'")
        if status_case not in ("title", "lower"):
            raise ValueError("status_case must be 'title' or 'lower'")
        if steps_per_poll < 1:
            raise ValueError("steps_per_poll must be >= 1")
        if seconds_per_step <= 0:
            raise ValueError("seconds_per_step must be > 0")
        if token_lifetime <= 0:
            raise ValueError("token_lifetime must be > 0")
        if not tenant:
            raise ValueError("tenant must not be empty")
        if keyfile is not None and certfile is None:
            raise ValueError("keyfile needs certfile")
        self._clients = dict(DEFAULT_CLIENTS if clients is None else clients)
        self._inference_clients = dict(DEFAULT_INFERENCE_CLIENTS if inference_clients is None else inference_clients)
        overlap = set(self._clients) & set(self._inference_clients)
        if overlap:
            raise ValueError(f"client ids registered as both training and inference clients: {sorted(overlap)}")
        self._host = host
        self._requested_port = port
        self._tenant = tenant
        self._token_lifetime = float(token_lifetime)
        self._token_prefix = token_prefix
        self._advance = advance
        self._steps_per_poll = steps_per_poll
        self._seconds_per_step = float(seconds_per_step)
        self._status_case = status_case
        self._initial_fail_models = frozenset(fail_models)
        self._user_data_dir = None if data_dir is None else Path(data_dir)
        self._certfile = None if certfile is None else str(certfile)
        self._keyfile = None if keyfile is None else str(keyfile)
        self._module_version_id = str(uuid.uuid4())

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._data_dir: Path | None = None
        self._port = 0

        self._tokens: dict[str, _Token] = {}
        self._models: dict[str, _Model] = {}
        self._faults: list[_ActiveFault] = []
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._callback_attempts: list[CallbackAttempt] = []
        self._counters = self._zero_counters()
        self._fail_models: set[str] = set(self._initial_fail_models)
        self._global_lifecycle: tuple[str, ...] | None = None
        self._model_lifecycles: dict[str, tuple[str, ...]] = {}
        self._lifecycle_cache: dict[str, _Lifecycle] = {}
        self._upload_dirs: list[str] = []
        self._foreign = ForeignListener(lambda path: self._route(path)[0])
        self._foreign_lock = threading.Lock()
        self._foreign_server: _Server | None = None
        self._foreign_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle of the server

    def start(self) -> SestekEmulator:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        context: ssl.SSLContext | None = None
        if self._certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._certfile, self._keyfile)
        if self._user_data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="sestek-emulator-", ignore_cleanup_errors=True)
            self._data_dir = Path(self._tempdir.name)
        else:
            self._data_dir = self._user_data_dir
        (self._data_dir / "uploads").mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        server = _Server((self._host, self._requested_port), self, context, ipv6=":" in self._host)
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sestek-emulator", daemon=True
        )
        self._thread.start()
        if self._advance == "time":
            self._ticker = threading.Thread(target=self._tick_loop, name="sestek-emulator-clock", daemon=True)
            self._ticker.start()
        _log.debug("Sestek emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and remove the temporary upload directory."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        with self._foreign_lock:
            foreign, foreign_thread = self._foreign_server, self._foreign_thread
            self._foreign_server = self._foreign_thread = None
        for each in (server, foreign):
            if each is not None:
                each.closing = True
                each.shutdown()
                each.server_close()
                each.close_connections()
        for thread in (self._thread, foreign_thread, self._ticker):
            if thread is not None:
                thread.join(timeout=1)
        self._server = self._thread = self._ticker = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> SestekEmulator:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the emulator is serving."""
        return self._server is not None

    # ------------------------------------------------------------------ configuration and inspection

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._base_url(self._host, self._port)

    def _base_url(self, host: str, port: int) -> str:
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{host}:{port}"

    @property
    def foreign_url(self) -> str:
        """
        Base URL of the foreign listener, the other origin ``redirect`` faults send clients to.

        It is started on first use (this property, or adding a ``redirect`` fault without ``location``).
        """
        with self._foreign_lock:
            if self._foreign_server is None:
                if self._server is None:
                    raise RuntimeError("the emulator is not running")
                self._foreign_server = self._bind_foreign(self._server.ssl_context)
                self._foreign_thread = threading.Thread(
                    target=self._foreign_server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name="sestek-emulator-foreign",
                    daemon=True,
                )
                self._foreign_thread.start()
            host, port = self._foreign_server.server_address[:2]
            return self._base_url(str(host), int(port))

    def _bind_foreign(self, context: ssl.SSLContext | None) -> _Server:
        # Another host, not just another port: some clients compare only host names when deciding
        # whether a redirect stays on the same site. 127.0.0.2 is loopback on Linux but not on macOS.
        try:
            return _Server(("127.0.0.2", 0), self._foreign, context, ipv6=False)
        except OSError:
            return _Server((self._host, 0), self._foreign, context, ipv6=":" in self._host)

    @property
    def foreign_requests(self) -> list[RecordedRequest]:
        """Requests that reached the foreign listener (a client followed a redirect), oldest first."""
        return self._foreign.requests

    @property
    def identity_url(self) -> str:
        """Base URL of the token service (the same server; the endpoint is ``/connect/token``)."""
        return self.url

    @property
    def tenant(self) -> str:
        """The tenant name."""
        return self._tenant

    @property
    def data_dir(self) -> Path:
        """Where uploads are written (after :meth:`start`)."""
        if self._data_dir is None:
            raise RuntimeError("the emulator is not running")
        return self._data_dir

    @property
    def train_client(self) -> tuple[str, str]:
        """``(client_id, client_secret)`` of the first training client."""
        if not self._clients:
            raise LookupError("no training client registered")
        return next(iter(self._clients.items()))

    @property
    def inference_client(self) -> tuple[str, str]:
        """``(client_id, client_secret)`` of the first inference client."""
        if not self._inference_clients:
            raise LookupError("no inference client registered")
        return next(iter(self._inference_clients.items()))

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded API requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """TCP connections open right now: a client that closes its pool when done brings this to 0."""
        server = self._server
        return server.open_connections() if server is not None else 0

    @property
    def counters(self) -> dict[str, int]:
        """A copy of the counters (token_requests, trainings_created, bytes_received, ...)."""
        with self._lock:
            return dict(self._counters)

    @property
    def callback_attempts(self) -> list[CallbackAttempt]:
        """Callbacks the emulator tried to deliver, oldest first."""
        with self._lock:
            return list(self._callback_attempts)

    @property
    def faults(self) -> list[Fault]:
        """Faults not used up yet."""
        with self._lock:
            return [active.fault for active in self._faults]

    @property
    def trainings(self) -> dict[str, Training]:
        """Snapshot of the latest training of every model id."""
        with self._lock:
            now = time.monotonic()
            events: list[_Event] = []
            snapshots = {}
            for model in self._models.values():
                events.extend(self._sync(model, now))
                snapshots[model.model_id] = self._snapshot(model)
        self._fire(events)
        return snapshots

    def add_fault(self, fault: Fault) -> None:
        """
        Queue a fault; faults are matched in the order they were added.

        :param fault: what to do and to which requests.
        """
        if fault.kind == "redirect" and fault.location is None and self._server is not None:
            # Started now, so the URL is known before the first redirect and the redirect is not slower.
            _ = self.foreign_url
        with self._lock:
            self._faults.append(_ActiveFault(fault, fault.count))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    def set_lifecycle(self, model_id: str | None = None, statuses: Sequence[str] | None = None) -> None:
        """
        Override the status sequence trainings go through.

        A per-model sequence wins over ``fail_models``; the global one still fails for them. A training
        only terminates when the last status is ``Completed`` or ``Failed`` (any case).

        :param model_id: the model to override, or ``None`` for every model without its own sequence.
        :param statuses: the sequence, or ``None`` to remove the override.
        """
        if statuses is not None:
            statuses = tuple(statuses)
            if not statuses or not all(isinstance(s, str) and s for s in statuses):
                raise ValueError("statuses must be a non-empty list of non-empty strings")
        with self._lock:
            if model_id is None:
                self._global_lifecycle = statuses
            elif statuses is None:
                self._model_lifecycles.pop(model_id, None)
            else:
                self._model_lifecycles[model_id] = statuses
            self._lifecycle_cache.clear()

    def fail_model(self, model_id: str, fail: bool = True) -> None:
        """
        Make (or stop making) trainings of ``model_id`` fail at the ``Training`` step.

        :param model_id: the model id.
        :param fail: ``False`` removes it from the failing set.
        """
        with self._lock:
            if fail:
                self._fail_models.add(model_id)
            else:
                self._fail_models.discard(model_id)
            self._lifecycle_cache.clear()

    def reset(self) -> None:
        """Forget trainings, faults, recorded requests, callbacks and counters; keep clients and config."""
        with self._lock:
            upload_dirs = self._upload_dirs
            self._upload_dirs = []
            self._models.clear()
            self._faults.clear()
            self._requests.clear()
            self._callback_attempts.clear()
            self._counters = self._zero_counters()
            self._fail_models = set(self._initial_fail_models)
            self._global_lifecycle = None
            self._model_lifecycles.clear()
            self._lifecycle_cache.clear()
        self._foreign.clear()
        for directory in upload_dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def issue_token(self, inference: bool = False) -> str:
        """
        Issue an access token directly, for tests that are not about the token endpoint.

        :param inference: issue an ``AIModule`` token for the first inference client instead of a
            ``SestekAI_External`` one for the first training client.
        """
        client_id = self.inference_client[0] if inference else self.train_client[0]
        with self._lock:
            return self._issue_token(client_id, SCOPE_INFERENCE if inference else SCOPE_TRAINING)

    def state(self) -> dict[str, Any]:
        """Everything the admin ``GET /_emulator/state`` reports, as a dict."""
        trainings = self.trainings
        with self._foreign_lock:
            foreign_server = self._foreign_server
        foreign_url = None
        if foreign_server is not None:
            host, port = foreign_server.server_address[:2]
            foreign_url = self._base_url(str(host), int(port))
        foreign = [r.to_dict() for r in self._foreign.requests]
        with self._lock:
            return {
                "url": self.url if self._server is not None else None,
                "foreign_url": foreign_url,
                "foreign_requests": foreign,
                "tenant": self._tenant,
                "counters": dict(self._counters),
                "request_count": len(self._requests),
                "trainings": {model_id: t.to_dict() for model_id, t in trainings.items()},
                "faults": [active.fault.to_dict() for active in self._faults],
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
                    for a in self._callback_attempts
                ],
                "fail_models": sorted(self._fail_models),
                "config": {
                    "advance": self._advance,
                    "steps_per_poll": self._steps_per_poll,
                    "seconds_per_step": self._seconds_per_step,
                    "status_case": self._status_case,
                    "token_lifetime": self._token_lifetime,
                    "token_prefix": self._token_prefix,
                },
            }

    # ------------------------------------------------------------------ state machine (lock held)

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {
            "token_requests": 0,
            "trainings_created": 0,
            "bytes_received": 0,
            "progress_polls": 0,
            "inference_requests": 0,
            "callbacks_sent": 0,
            "callbacks_failed": 0,
        }

    def _lifecycle(self, model_id: str) -> _Lifecycle:
        cached = self._lifecycle_cache.get(model_id)
        if cached is not None:
            return cached
        statuses: Sequence[str]
        if model_id in self._model_lifecycles:
            statuses = self._model_lifecycles[model_id]
        else:
            statuses = self._global_lifecycle or TRAINING_STATUSES
            if model_id in self._fail_models:
                statuses = _failing(statuses)
        lifecycle = _Lifecycle.build(statuses)
        self._lifecycle_cache[model_id] = lifecycle
        return lifecycle

    def _case(self, status: str | None) -> str | None:
        if status is None or self._status_case == "title":
            return status
        return status.lower()

    def _sync(self, model: _Model, now: float) -> list[_Event]:
        """Bring the current generation up to date with the clock (time mode) and the lifecycle."""
        gen = model.current
        lifecycle = self._lifecycle(model.model_id)
        if self._advance == "time":
            target = int((now - gen.created_mono) / self._seconds_per_step)
            gen.step = max(gen.step, min(target, lifecycle.last))
        gen.step = min(gen.step, lifecycle.last)
        return self._failure_events(model, lifecycle)

    def _failure_events(self, model: _Model, lifecycle: _Lifecycle) -> list[_Event]:
        gen = model.current
        if gen.step != lifecycle.last or lifecycle.outcome != "failed" or gen.notified:
            return []
        gen.notified = True
        if gen.callback is None:
            return []
        status = self._case(lifecycle.statuses[gen.step]) or ""
        return [_Event(model.model_id, "TrainFailed", status, None, lifecycle.percents[gen.step], gen.callback)]

    def _observe(self, model: _Model) -> tuple[str, int, str | None, bool]:
        """What a progress call reports now: status, percent, inference status, whether terminal."""
        gen = model.current
        lifecycle = self._lifecycle(model.model_id)
        at_end = gen.step == lifecycle.last and lifecycle.outcome is not None
        inference = None
        if at_end and lifecycle.outcome == "completed":
            inference = _INFERENCE_STAGES[gen.publish_stage]
        status = self._case(lifecycle.statuses[gen.step]) or ""
        return status, lifecycle.percents[gen.step], self._case(inference), at_end

    def _poll(self, model: _Model) -> tuple[dict[str, Any], list[_Event]]:
        events = self._sync(model, time.monotonic())
        gen = model.current
        gen.polls += 1
        lifecycle = self._lifecycle(model.model_id)
        finished = gen.step == lifecycle.last and lifecycle.outcome == "completed"
        if finished:
            # The documented quirk: for API trainings the progress call *after* completion deploys the
            # model, so publishing moves one stage per poll that follows the first Completed answer.
            # The stage changes before answering: the status a client sees is the real one, and a
            # model it saw as Pending really is not answerable yet.
            if not gen.completed_seen:
                gen.completed_seen = True
            elif gen.publish_stage < len(_INFERENCE_STAGES) - 1:
                gen.publish_stage += 1
                if gen.publish_stage == len(_INFERENCE_STAGES) - 1:
                    events.extend(self._deploy(model))
        status, percent, inference, _ = self._observe(model)
        answer = {"percent": percent, "trainingStatus": status, "inferenceStatus": inference}
        if not finished and self._advance == "poll" and gen.step < lifecycle.last:
            gen.step = min(gen.step + self._steps_per_poll, lifecycle.last)
            events.extend(self._failure_events(model, lifecycle))
        return answer, events

    def _deploy(self, model: _Model) -> list[_Event]:
        gen = model.current
        model.deployed = gen
        model.semantic_cache.clear()
        if gen.notified or gen.callback is None:
            return []
        gen.notified = True
        return [
            _Event(
                model.model_id, "TrainSuccess", self._case("Completed") or "", self._case("Running"), 100, gen.callback
            )
        ]

    def _snapshot(self, model: _Model) -> Training:
        gen = model.current
        status, percent, inference, _ = self._observe(model)
        return Training(
            model_id=model.model_id,
            project_name=gen.project_name,
            status=status,
            percent=percent,
            inference_status=inference,
            generation=gen.number,
            files=gen.files,
            urls=gen.urls,
            callback=gen.callback,
            created_at=gen.created_at,
            experiment_id=gen.experiment_id,
            project_id=gen.project_id,
            published=model.deployed is not None,
            deployed_generation=None if model.deployed is None else model.deployed.number,
            polls=gen.polls,
        )

    def _issue_token(self, client_id: str, scope: str) -> str:
        token = self._token_prefix + secrets.token_urlsafe(32)
        now = time.monotonic()
        if len(self._tokens) >= 4096 and len(self._tokens) % 1024 == 0:
            for key in [k for k, v in self._tokens.items() if v.expires <= now]:
                del self._tokens[key]
        self._tokens[token] = _Token(scope, client_id, now + self._token_lifetime)
        return token

    def _take_fault(
        self, endpoint: str, model_id: str | None, when: str, *, filtered: bool | None = None
    ) -> Fault | None:
        """
        Use up the first matching fault.

        :param filtered: ``True`` only considers faults with a model filter, ``False`` only those without.
        """
        with self._lock:
            for index, active in enumerate(self._faults):
                fault = active.fault
                if fault.when != when or fault.endpoint not in ("any", endpoint):
                    continue
                if filtered is not None and filtered != (fault.model_id is not None):
                    continue
                if fault.model_id is not None and fault.model_id != model_id:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                    if active.remaining <= 0:
                        del self._faults[index]
                return fault
        return None

    def _tick_loop(self) -> None:
        # Time mode needs a clock even when nobody polls: a failed training must still call back.
        interval = min(0.1, self._seconds_per_step / 2)
        while not self._stopping.wait(interval):
            events: list[_Event] = []
            with self._lock:
                now = time.monotonic()
                for model in self._models.values():
                    if model.current.callback is not None and not model.current.notified:
                        events.extend(self._sync(model, now))
            self._fire(events)

    # ------------------------------------------------------------------ callbacks and URL fetches

    def _fire(self, events: list[_Event]) -> None:
        for event in events:
            threading.Thread(
                target=self._deliver_callback, args=(event,), name="sestek-emulator-callback", daemon=True
            ).start()

    def _deliver_callback(self, event: _Event) -> None:
        import urllib.error
        import urllib.request

        info = event.callback
        status: int | None = None
        error: str | None = None
        token: str | None = None
        try:
            if info.identity_address and info.client_id:
                token = self._callback_token(info)
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
            request = urllib.request.Request(info.address, data=_json_bytes(payload), headers=headers, method="POST")  # noqa: S310 - the user's callback URL
            with _opener().open(request, timeout=_CALLBACK_TIMEOUT) as response:
                status = int(response.status)
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"callback answered HTTP {exc.code}"
        except Exception as exc:  # a broken receiver must never take the emulator down
            error = f"{type(exc).__name__}: {exc}"
        succeeded = error is None and status is not None and 200 <= status < 300
        attempt = CallbackAttempt(
            event.model_id, event.event, info.address, status, error, token is not None, time.time()
        )
        with self._lock:
            self._callback_attempts.append(attempt)
            self._counters["callbacks_sent" if succeeded else "callbacks_failed"] += 1
        _log.debug("callback %s for %s: status=%s error=%s", event.event, event.model_id, status, error)

    @staticmethod
    def _callback_token(info: CallbackInfo) -> str:
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
            raise ValueError("callback token response has no access_token")
        return token

    def _fetch_urls(self, gen: _Generation, urls: list[str], directory: str) -> None:
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
                _log.debug("fetching data URL %s failed: %s", url, exc)
                continue
            with self._lock:
                gen.url_documents[url] = path

    def _index_for(self, gen: _Generation) -> PassageIndex:
        if gen.index is not None:
            return gen.index
        with gen.index_lock:
            if gen.index is None:
                if gen.fetcher is not None:
                    gen.fetcher.join(timeout=len(gen.urls) * (_URL_FETCH_TIMEOUT + 1))
                with self._lock:
                    sources = [(f.filename or f.field, f.path) for f in gen.files]
                    sources.extend(gen.url_documents.items())
                documents: list[tuple[str, str]] = []
                budget = _INDEX_MODEL_LIMIT
                for source, path in sources:
                    if budget <= 0:
                        break
                    try:
                        with open(path, "rb") as handle:
                            raw = handle.read(min(_INDEX_FILE_LIMIT, budget))
                    except OSError:
                        continue
                    budget -= len(raw)
                    documents.append((source, raw.decode("utf-8-sig", "replace")))
                gen.index = PassageIndex.from_documents(documents)
            return gen.index

    # ------------------------------------------------------------------ HTTP handling

    def _handle(self, handler: _Handler) -> None:
        path, _, query = handler.path.partition("?")
        try:
            reader = body_reader(handler.headers, handler.rfile)
        except ValueError as exc:
            exchange = _Exchange(handler, None, BodyReader(handler.rfile, 0, False), self._stopping)
            exchange.send(_abp_error(400, _ABP_INVALID, details=str(exc)), close=True)
            return
        if path.startswith(_ADMIN_PREFIX):
            self._handle_admin(_Exchange(handler, None, reader, self._stopping), path[len(_ADMIN_PREFIX) :], query)
            return
        endpoint, path_value, methods = self._route(path)
        record = record_of(handler, path, query, endpoint)
        counter = _ARRIVAL_COUNTERS.get(endpoint)
        with self._lock:
            self._requests.append(record)
            if counter:
                self._counters[counter] += 1
        reader.on_data = self._count_bytes
        exchange = _Exchange(handler, record, reader, self._stopping)
        try:
            if endpoint == "other":
                reader.drain()
                exchange.send(_Response(404))
            elif handler.command not in methods:
                reader.drain()
                exchange.send(_Response(405, headers=[("Allow", ", ".join(methods))]))
            elif endpoint == "train":
                self._serve_train(exchange)
            else:
                self._serve_simple(exchange, endpoint, path_value)
        except _Dropped:
            pass
        except IncompleteBody as exc:
            record.error = f"client disconnected: {exc}"
            handler.close_connection = True
        except BadFraming as exc:
            record.error = f"bad body framing: {exc}"
            if not exchange.answered:
                exchange.send(_abp_error(400, _ABP_INVALID, details=str(exc)), close=True)
        except (ConnectionError, TimeoutError) as exc:
            record.error = f"connection error: {exc}"
            handler.close_connection = True
        except Exception:
            _log.exception("Sestek emulator failed on %s %s", handler.command, path)
            record.error = "emulator error"
            if not exchange.answered:
                exchange.send(_abp_error(500, _ABP_INTERNAL), close=True)
        finally:
            record.body_size = reader.consumed

    def _count_bytes(self, size: int) -> None:
        with self._lock:
            self._counters["bytes_received"] += size

    def _route(self, path: str) -> tuple[str, str | None, tuple[str, ...]]:
        if path == _TOKEN_PATH:
            return "token", None, ("POST",)
        if path in (_TRAIN_PATH, _TRAIN_PATH + "/"):
            return "train", None, ("POST",)
        match = _PROGRESS_RE.fullmatch(path)
        if match:
            return "progress", urllib.parse.unquote(match[1]), ("GET",)
        match = _INFERENCE_RE.fullmatch(path)
        if match:
            return "inference", urllib.parse.unquote(match[1]), ("POST",)
        return "other", None, ()

    def _inference_model_id(self, segment: str) -> str | None:
        # Tenants may contain hyphens themselves, so the split is by the known tenant, not the first "-".
        prefix = self._tenant + "-"
        if segment.startswith(prefix) and len(segment) > len(prefix):
            return segment[len(prefix) :]
        return None

    def _before_fault(self, exchange: _Exchange, fault: Fault) -> None:
        """Deliver a ``when="before"`` fault; returns only for ``delay`` and ``drip`` (handling continues)."""
        assert exchange.record is not None
        exchange.record.fault = f"{fault.kind}:before"
        if fault.kind == "delay":
            self._stopping.wait(fault.delay)
            return
        if fault.kind == "drip":
            exchange.pace = fault
            return
        if fault.kind == "drop":
            exchange.drop()
            raise _Dropped
        if fault.kind == "odd_token":
            # The token's scope follows the client id, so the form is read even though it is not checked.
            try:
                body = exchange.reader.read_all(_SMALL_BODY_LIMIT)
            except BodyTooLarge:
                body = b""
            exchange.record.form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        exchange.reader.drain()
        self._deliver(exchange, fault, None)
        raise _Dropped

    def _deliver(self, exchange: _Exchange, fault: Fault, real: _Response | None) -> None:
        """Send what a fault answers instead of ``real`` (``None`` for a ``when="before"`` fault)."""
        if fault.kind == "drip":
            exchange.pace = fault
            exchange.send(real if real is not None else _Response(500))
            return
        if fault.kind == "drop":
            exchange.drop()
            return
        if fault.kind == "delay":
            self._stopping.wait(fault.delay)
            exchange.send(real if real is not None else _Response(500))
            return
        if fault.kind == "malformed":
            exchange.send(_Response(200, b'{"percent": 50, "trainingStatus": ', _JSON))
            return
        if fault.kind == "truncated":
            body = real.body if real is not None and len(real.body) > 1 else _json_bytes({"emulator": "x" * 64})
            exchange.send(_Response(200, body[: len(body) // 2], _JSON), content_length=len(body), close=True)
            exchange.drop()
            return
        if fault.kind in ("redirect", "raw", "odd_token", "non_finite"):
            response = self._hostile_response(exchange, fault, real)
        else:
            response = self._fault_response(fault)
        if fault.retry_after is not None:
            value = fault.retry_after
            text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            response.headers.append(("Retry-After", text))
        exchange.send(response)

    def _hostile_response(self, exchange: _Exchange, fault: Fault, real: _Response | None) -> _Response:
        record = exchange.record
        assert record is not None and fault.status is not None
        if fault.kind == "redirect":
            query = f"?{record.query}" if record.query else ""
            return _Response(
                fault.status, headers=[("Location", fault.location or self.foreign_url + record.path + query)]
            )
        if fault.kind == "raw":
            assert fault.raw_body is not None
            return _Response(fault.status, fault.raw_body.encode("utf-8"), fault.content_type or None)
        assert fault.value is not None
        if fault.kind == "odd_token":
            return self._odd_token(record, fault.value)
        return self._non_finite(record.model_id, fault.value, real)

    def _odd_token(self, record: RecordedRequest, token: str) -> _Response:
        client_id = (record.form.get("client_id") or [""])[0]
        scope = SCOPE_INFERENCE if client_id in self._inference_clients else SCOPE_TRAINING
        entry = _Token(scope, client_id, time.monotonic() + self._token_lifetime)
        with self._lock:
            self._tokens[token] = entry
            # Header values arrive decoded as Latin-1, so a client that puts the token's UTF-8 bytes on the
            # wire presents this spelling of it.
            self._tokens[token.encode("utf-8").decode("latin-1")] = entry
        body = {
            "access_token": token,
            "expires_in": math.ceil(self._token_lifetime),
            "token_type": "Bearer",
            "scope": scope,
        }
        return _json_response(200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def _non_finite(self, model_id: str | None, literal: str, real: _Response | None) -> _Response:
        answer: dict[str, Any] | None = None
        if real is not None and real.status == 200:
            try:
                parsed = json.loads(real.body)
            except ValueError:
                parsed = None
            answer = parsed if isinstance(parsed, dict) else None
        if answer is None:
            # Nothing real to distort (a "before" fault, or the real answer was an error): report the
            # model's current state without advancing it.
            training = self.trainings.get(model_id) if model_id is not None else None
            if training is None:
                answer = {"percent": 0, "trainingStatus": self._case("Training"), "inferenceStatus": None}
            else:
                answer = {"percent": 0, "trainingStatus": training.status, "inferenceStatus": training.inference_status}
        return _Response(200, non_finite_json(answer, literal), _JSON)

    @staticmethod
    def _fault_response(fault: Fault) -> _Response:
        status = fault.status
        assert status is not None
        if fault.body == "empty":
            return _Response(status)
        if fault.body == "html":
            return _html_error(status)
        if fault.body == "openiddict":
            error = {
                400: "invalid_request",
                401: "invalid_client",
                403: "unauthorized_client",
                503: "temporarily_unavailable",
            }
            description = fault.message or "The authorization server is temporarily unavailable."
            return _oidc_error(status, error.get(status, "server_error"), description, "ID2000")
        default = {
            400: _ABP_INVALID,
            401: "Unauthorized",
            403: "Forbidden",
            404: "There is no such an entity.",
            409: "There is already an entity with the same key.",
            429: "Too many requests. Please try again later.",
        }.get(status, _ABP_INTERNAL)
        return _abp_error(status, fault.message or default)

    def _finish(self, exchange: _Exchange, endpoint: str, model_id: str | None, response: _Response) -> None:
        fault = self._take_fault(endpoint, model_id, "after")
        if fault is None:
            exchange.send(response)
            return
        assert exchange.record is not None
        exchange.record.fault = f"{fault.kind}:after"
        self._deliver(exchange, fault, response)

    def _authorize(self, exchange: _Exchange, scope: str) -> _Response | None:
        header = exchange.handler.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _Response(401, headers=[("WWW-Authenticate", "Bearer")])
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None and entry.expires <= time.monotonic():
                del self._tokens[token]
                return _Response(
                    401,
                    headers=[
                        ("WWW-Authenticate", 'Bearer error="invalid_token", error_description="The token expired"')
                    ],
                )
        if entry is None:
            return _Response(401, headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')])
        if entry.scope != scope:
            return _Response(403, headers=[("WWW-Authenticate", 'Bearer error="insufficient_scope"')])
        return None

    def _serve_simple(self, exchange: _Exchange, endpoint: str, path_value: str | None) -> None:
        """Token, progress and inference: small bodies, read into memory."""
        record = exchange.record
        assert record is not None
        model_id = path_value
        if endpoint == "inference" and path_value is not None:
            model_id = self._inference_model_id(path_value)
        record.model_id = model_id
        fault = self._take_fault(endpoint, model_id, "before")
        if fault is not None:
            self._before_fault(exchange, fault)
        try:
            body = exchange.reader.read_all(_SMALL_BODY_LIMIT)
        except BodyTooLarge:
            exchange.send(_abp_error(413, "Request body too large."), close=True)
            return
        if endpoint == "token":
            response = self._token(exchange, body)
        elif endpoint == "progress":
            assert model_id is not None
            response = self._authorize(exchange, SCOPE_TRAINING) or self._progress(model_id)
        else:
            assert path_value is not None
            response = self._authorize(exchange, SCOPE_INFERENCE) or self._inference(exchange, path_value, body)
        self._finish(exchange, endpoint, model_id, response)

    # ------------------------------------------------------------------ endpoints

    def _token(self, exchange: _Exchange, body: bytes) -> _Response:
        record = exchange.record
        assert record is not None
        headers = exchange.handler.headers
        media_type = parse_header_value(headers.get("Content-Type") or "")[0]
        if media_type != "application/x-www-form-urlencoded":
            return _oidc_error(400, "invalid_request", "The specified 'Content-Type' header is invalid.", "ID2082")
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        record.form = form

        def single(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        for name, values in form.items():
            if len(values) > 1:
                return _oidc_error(400, "invalid_request", f"The '{name}' parameter cannot be repeated.", "ID2011")
        grant_type = single("grant_type")
        if not grant_type:
            return _oidc_error(400, "invalid_request", "The mandatory 'grant_type' parameter is missing.", "ID2029")
        if grant_type != "client_credentials":
            return _oidc_error(
                400, "unsupported_grant_type", "The specified 'grant_type' parameter is not supported.", "ID2032"
            )
        client_id = single("client_id")
        client_secret = single("client_secret")
        authorization = headers.get("Authorization") or ""
        if authorization[:6].lower() == "basic ":
            if client_id or client_secret:
                return _oidc_error(400, "invalid_request", "Multiple client credentials cannot be specified.", "ID2087")
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except ValueError:
                return _oidc_error(400, "invalid_request", "The specified client credentials are malformed.", "ID2055")
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, client_secret = urllib.parse.unquote_plus(raw_id), urllib.parse.unquote_plus(raw_secret)
        if not client_id:
            return _oidc_error(400, "invalid_request", "The mandatory 'client_id' parameter is missing.", "ID2029")
        if not client_secret:
            return _oidc_error(400, "invalid_request", "The mandatory 'client_secret' parameter is missing.", "ID2029")
        scope = None
        for registry, registry_scope in ((self._clients, SCOPE_TRAINING), (self._inference_clients, SCOPE_INFERENCE)):
            expected = registry.get(client_id)
            if expected is not None and hmac.compare_digest(expected.encode(), client_secret.encode()):
                scope = registry_scope
        if scope is None:
            return _oidc_error(401, "invalid_client", "The specified client credentials are invalid.", "ID2055")
        with self._lock:
            token = self._issue_token(client_id, scope)
        body_out = {
            "access_token": token,
            "expires_in": math.ceil(self._token_lifetime),
            "token_type": "Bearer",
            "scope": scope,
        }
        return _json_response(200, body_out, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def _progress(self, model_id: str) -> _Response:
        with self._lock:
            model = self._models.get(model_id)
            if model is None:
                answer = None
                events: list[_Event] = []
            else:
                answer, events = self._poll(model)
        self._fire(events)
        if answer is None:
            return _abp_error(404, f"There is no training for the model ID: {model_id}")
        return _json_response(200, answer)

    def _serve_train(self, exchange: _Exchange) -> None:
        record = exchange.record
        assert record is not None
        fault = self._take_fault("train", None, "before", filtered=False)
        if fault is not None:
            self._before_fault(exchange, fault)
        denied = self._authorize(exchange, SCOPE_TRAINING)
        if denied is not None:
            exchange.reader.drain()
            exchange.send(denied)
            return
        upload_dir = str(self.data_dir / "uploads" / f"{time.time_ns()}-{secrets.token_hex(4)}")
        accepted = False
        try:
            parsed = self._read_form(exchange, upload_dir)
            if isinstance(parsed, _Response):
                self._discard(upload_dir)
                exchange.send(parsed)
                return
            fields, files = parsed
            record.form = fields
            record.files = files
            model_id = fields["modelId"][0] if fields.get("modelId") else None
            record.model_id = model_id
            if model_id is not None:
                fault = self._take_fault("train", model_id, "before", filtered=True)
                if fault is not None:
                    if fault.kind not in ("delay", "drip"):
                        # Removed before answering, like any rejected upload; delay and drip go on handling.
                        self._discard(upload_dir)
                    self._before_fault(exchange, fault)
            response = self._create_training(fields, files, upload_dir)
            accepted = response.status == 200
            if not accepted:
                # Removed before answering, so a client (or test) never sees a rejected upload on disk.
                self._discard(upload_dir)
            self._finish(exchange, "train", model_id, response)
        finally:
            if not accepted:
                self._discard(upload_dir)

    @staticmethod
    def _discard(upload_dir: str) -> None:
        shutil.rmtree(upload_dir, ignore_errors=True)

    def _read_form(
        self, exchange: _Exchange, upload_dir: str
    ) -> tuple[dict[str, list[str]], list[ReceivedFile]] | _Response:
        """Read the training form; files stream to ``upload_dir`` without ever being held in memory."""
        media_type, params = parse_header_value(exchange.handler.headers.get("Content-Type") or "")
        reader = exchange.reader
        if media_type == "application/x-www-form-urlencoded":
            # ASP.NET binds [FromForm] from urlencoded bodies too; only files are impossible that way.
            try:
                body = reader.read_all(_SMALL_BODY_LIMIT)
            except BodyTooLarge:
                return _abp_error(413, "Request body too large.")
            return urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True), []
        if media_type != "multipart/form-data":
            reader.drain()
            return _problem(415)

        def open_file(field_name: str, filename: str, index: int) -> tuple[BinaryIO, str]:
            os.makedirs(upload_dir, exist_ok=True)
            base = os.path.basename(filename.replace("\\", "/"))
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "file"
            path = os.path.join(upload_dir, f"{index:04d}-{safe}")
            return open(path, "wb"), path

        try:
            parser = MultipartParser(reader, params.get("boundary", ""), open_file)
        except MultipartError as exc:
            reader.drain()
            return _abp_error(400, _ABP_INVALID, details=f"Failed to read the request form. {exc}")
        try:
            return parser.parse()
        except MultipartError as exc:
            parser.abort()
            reader.drain()
            return _abp_error(400, _ABP_INVALID, details=f"Failed to read the request form. {exc}")
        except BaseException:
            parser.abort()
            raise

    def _create_training(self, fields: dict[str, list[str]], files: list[ReceivedFile], upload_dir: str) -> _Response:
        def first(name: str) -> str | None:
            values = fields.get(name)
            return values[0] if values else None

        model_id = first("modelId")
        project_name = first("projectName")
        data_files = [f for f in files if f.field == "dataFiles" and (f.filename or f.size)]
        data_urls = [u.strip() for u in fields.get("dataUrls", []) if u.strip()]
        errors: list[tuple[str, list[str]]] = []
        if not model_id or not model_id.strip():
            errors.append(("The ModelId field is required.", ["modelId"]))
        else:
            if len(model_id) > _MODEL_ID_MAX:
                errors.append(
                    (
                        f"The field ModelId must be a string with a maximum length of {_MODEL_ID_MAX}.",
                        ["modelId"],
                    )
                )
            if not _MODEL_ID_RE.fullmatch(model_id):
                errors.append(
                    (f"The field ModelId must match the regular expression '{_MODEL_ID_PATTERN}'.", ["modelId"])
                )
        if not project_name or not project_name.strip():
            errors.append(("The ProjectName field is required.", ["projectName"]))
        if not data_files and not data_urls:
            errors.append(("At least one of DataFiles or DataUrls must be provided.", ["dataFiles", "dataUrls"]))
        for url in data_urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                errors.append((f"The DataUrls value '{url}' is not a valid absolute http(s) URL.", ["dataUrls"]))
        if errors:
            return _abp_validation(errors)
        assert model_id is not None and project_name is not None
        callback = None
        address = (first("callbackAddress") or "").strip()
        if address:
            callback = CallbackInfo(
                address=address,
                identity_address=(first("callbackIdentityAddress") or "").strip() or None,
                client_id=first("callbackClientId") or None,
                client_secret=first("callbackClientSecret") or None,
            )
        local_urls = [u for u in data_urls if (urllib.parse.urlsplit(u).hostname or "") in _LOOPBACK_HOSTS]
        events: list[_Event] = []
        gen: _Generation | None
        with self._lock:
            model = self._models.get(model_id)
            if model is not None:
                events = self._sync(model, time.monotonic())
                if not self._observe(model)[3]:
                    gen = None
                else:
                    gen = _Generation(
                        number=model.current.number + 1,
                        project_name=project_name,
                        files=tuple(data_files),
                        urls=tuple(data_urls),
                        callback=callback,
                        upload_dir=upload_dir,
                        project_id=model.current.project_id,
                    )
                    model.current = gen
            else:
                gen = _Generation(
                    number=0,
                    project_name=project_name,
                    files=tuple(data_files),
                    urls=tuple(data_urls),
                    callback=callback,
                    upload_dir=upload_dir,
                    project_id=str(uuid.uuid4()),
                )
                self._models[model_id] = _Model(model_id, gen)
            if gen is not None:
                self._counters["trainings_created"] += 1
                self._upload_dirs.append(upload_dir)
                if local_urls:
                    gen.fetcher = threading.Thread(
                        target=self._fetch_urls,
                        args=(gen, local_urls, upload_dir),
                        name="sestek-emulator-fetch",
                        daemon=True,
                    )
                    gen.fetcher.start()
        self._fire(events)
        if gen is None:
            return _abp_error(403, f"The training is still in progress for the same model ID: {model_id}")
        return _json_response(200, self._experiment(model_id, gen))

    def _experiment(self, model_id: str, gen: _Generation) -> dict[str, Any]:
        created = _iso(gen.created_at)
        mappings = [
            {
                "datasetColumn": None,
                "experimentId": gen.experiment_id,
                "datasetId": str(uuid.uuid4()),
                "moduleDatasetColumnId": None,
                "isDeleted": False,
                "deleterId": None,
                "deletionTime": None,
                "lastModificationTime": None,
                "lastModifierId": None,
                "creationTime": created,
                "creatorId": None,
                "id": str(uuid.uuid4()),
            }
            for _ in range(len(gen.files) + len(gen.urls))
        ]
        return {
            "name": model_id,
            "description": gen.project_name,
            "status": 0,
            "statusMessage": self._case("Initialized"),
            "percent": 0,
            "trainingParams": {},
            "endpoints": [],
            "documentationPath": None,
            "projectId": gen.project_id,
            "moduleVersionId": self._module_version_id,
            "experimentMetrics": [],
            "experimentDatasetMappings": mappings,
            "experimentTestsetMapping": [],
            "lastPublishTime": None,
            "tryToStop": None,
            "completionTime": None,
            "isDeleted": False,
            "deleterId": None,
            "deletionTime": None,
            "lastModificationTime": None,
            "lastModifierId": None,
            "creationTime": created,
            "creatorId": None,
            "id": gen.experiment_id,
        }

    def _inference(self, exchange: _Exchange, segment: str, body: bytes) -> _Response:
        record = exchange.record
        assert record is not None
        model_id = self._inference_model_id(segment)
        not_found = _abp_error(404, f"Published model {segment} not found")
        if model_id is None:
            return not_found
        events: list[_Event] = []
        with self._lock:
            model = self._models.get(model_id)
            deployed = None
            trained = False
            if model is not None:
                events = self._sync(model, time.monotonic())
                deployed = model.deployed
                status, _, _, terminal = self._observe(model)
                trained = terminal and status.lower() == "completed"
        self._fire(events)
        if model is None or (deployed is None and not trained):
            return not_found
        if deployed is None:
            return _Response(503, _UNAVAILABLE.encode("utf-8"), _TEXT)
        media_type = parse_header_value(exchange.handler.headers.get("Content-Type") or "")[0]
        if media_type != "application/json" and not media_type.endswith("+json"):
            return _problem(415)
        try:
            payload = json.loads(body)
        except ValueError:
            return _abp_validation([("The request body is not valid JSON.", [])])
        record.json = payload
        errors = self._validate_inference(payload)
        if errors:
            return _abp_validation(errors)
        started = time.perf_counter()
        index = self._index_for(deployed)
        results = []
        for item in payload["inputs"]:
            query = item["query"]
            use_cache = bool(item.get("use_semantic_cache", False))
            key = " ".join(query.casefold().split())
            if use_cache:
                with self._lock:
                    cached = model.semantic_cache.get(key)
                if cached is not None:
                    results.append({**cached[1], "cache_hit": {"query": cached[0], "score": 1.0}})
                    continue
            hits = index.search(query, 3)
            result = {
                "answer": hits[0][0].answer if hits else NO_ANSWER,
                "standalone_question": query,
                "docs": [{"source": p.source, "score": score, "content": p.content} for p, score in hits],
                "logs": {
                    "model": segment,
                    "generation": deployed.number,
                    "retriever": "tf-idf",
                    "passages_indexed": len(index.passages),
                    "chat_history_turns": len(item.get("chat_history") or []),
                    "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
                },
                "cache_hit": None,
            }
            if use_cache:
                with self._lock:
                    model.semantic_cache.setdefault(key, (query, result))
            results.append(result)
        return _json_response(200, {"result": results})

    @staticmethod
    def _validate_inference(payload: Any) -> list[tuple[str, list[str]]]:
        if not isinstance(payload, dict):
            return [("The request body must be a JSON object.", [])]
        errors: list[tuple[str, list[str]]] = []
        prompt = payload.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            errors.append(("The prompt field must be a string.", ["prompt"]))
        inputs = payload.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            errors.append(("The inputs field is required and must be a non-empty list.", ["inputs"]))
            return errors
        for index, item in enumerate(inputs):
            where = f"inputs[{index}]"
            if not isinstance(item, dict):
                errors.append((f"{where} must be an object.", [where]))
                continue
            query = item.get("query")
            if not isinstance(query, str) or not query.strip():
                errors.append((f"The query field of {where} is required.", [f"{where}.query"]))
            history = item.get("chat_history")
            if history is not None and not isinstance(history, list):
                errors.append((f"The chat_history field of {where} must be a list.", [f"{where}.chat_history"]))
            cache = item.get("use_semantic_cache")
            if cache is not None and not isinstance(cache, bool):
                errors.append(
                    (f"The use_semantic_cache field of {where} must be a boolean.", [f"{where}.use_semantic_cache"])
                )
            threshold = item.get("semantic_cache_threshold")
            if threshold is not None and (
                isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1
            ):
                errors.append(
                    (
                        f"The semantic_cache_threshold field of {where} must be a number between 0 and 1.",
                        [f"{where}.semantic_cache_threshold"],
                    )
                )
        return errors

    # ------------------------------------------------------------------ admin API

    def _handle_admin(self, exchange: _Exchange, name: str, query: str) -> None:
        method = exchange.handler.command
        try:
            body = exchange.reader.read_all(1 << 20)
            payload: Any = json.loads(body) if body.strip() else {}
            response = self._admin(method, name.rstrip("/"), urllib.parse.parse_qs(query), payload)
        except (ValueError, TypeError, BodyTooLarge) as exc:
            response = _json_response(400, {"error": str(exc)})
        exchange.send(response)

    def _admin(self, method: str, name: str, query: dict[str, list[str]], payload: Any) -> _Response:
        ok = _json_response(200, {"ok": True})
        if name == "health" and method == "GET":
            return ok
        if name == "state" and method == "GET":
            return _json_response(200, self.state())
        if name == "requests" and method == "GET":
            endpoint = query["endpoint"][0] if query.get("endpoint") else None
            since = int((query.get("since") or ["0"])[0])
            records = self.requests[since:]
            return _json_response(200, [r.to_dict() for r in records if endpoint in (None, r.endpoint)])
        if name == "faults":
            if method == "POST":
                if not isinstance(payload, dict):
                    raise ValueError("a fault must be a JSON object")
                self.add_fault(Fault.from_dict(payload))
                return ok
            if method == "DELETE":
                self.clear_faults()
                return ok
            if method == "GET":
                return _json_response(200, [f.to_dict() for f in self.faults])
        if name == "foreign" and method == "GET":
            return _json_response(
                200, {"url": self.foreign_url, "requests": [r.to_dict() for r in self.foreign_requests]}
            )
        if name == "reset" and method == "POST":
            self.reset()
            return ok
        if name == "lifecycle" and method == "POST":
            if not isinstance(payload, dict):
                raise ValueError("lifecycle must be a JSON object")
            statuses = payload.get("statuses")
            if statuses is not None and not isinstance(statuses, list):
                raise ValueError("statuses must be a list or null")
            self.set_lifecycle(model_id=payload.get("model_id"), statuses=statuses)
            return ok
        if name == "fail-model" and method == "POST":
            if not isinstance(payload, dict) or not isinstance(payload.get("model_id"), str):
                raise ValueError("fail-model needs a JSON object with a string model_id")
            self.fail_model(payload["model_id"], bool(payload.get("fail", True)))
            return ok
        return _json_response(404, {"error": f"unknown admin endpoint {method} /_emulator/{name}"})
