"""
An in-process emulator of the Sestek AI (Knovvu) external training API and its token service.

It serves the documented endpoints over real HTTP (optionally HTTPS) so DAGs, hooks and triggers can
be exercised offline, and it can misbehave on request (:class:`Fault`) the way a real gateway does.
It deliberately shares no code or constants with the provider's client: a wrong path or field name
in the client must fail against the emulator, not be mirrored by it.

The server is aiohttp.web on an event loop of its own thread (:mod:`._runner`); aiohttp is imported
only when an emulator starts, so importing this module (the pytest plugin does, in every pytest run)
stays cheap. The parts, by concern: :mod:`._lifecycle` (training state machine), :mod:`._wire`
(response formats), :mod:`._api` and its ``_api_*`` siblings (routes), :mod:`._faults` and
:mod:`._foreign` (fault injection), :mod:`._outbound` (callbacks, data URLs), :mod:`._admin`.
Airflow is never imported.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._lifecycle import Trainings
from ._model import (
    DEFAULT_CLIENTS,
    DEFAULT_INFERENCE_CLIENTS,
    DEFAULT_TENANT,
    DEFAULT_TOKEN_LIFETIME,
    DEFAULT_TOKEN_PREFIX,
    SCOPE_INFERENCE,
    SCOPE_TRAINING,
    CallbackAttempt,
    Fault,
    RecordedRequest,
    Training,
    zero_counters,
)
from ._outbound import Outbound
from ._tokens import Tokens

if TYPE_CHECKING:
    from aiohttp import web

    from ._faults import FaultQueue
    from ._foreign import ForeignListener
    from ._runner import ServerThread

__all__ = ["SestekEmulator"]

_log = logging.getLogger(__name__)


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
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError("port must be an integer from 0 to 65535")
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
        training_clients = dict(DEFAULT_CLIENTS if clients is None else clients)
        inference = dict(DEFAULT_INFERENCE_CLIENTS if inference_clients is None else inference_clients)
        overlap = set(training_clients) & set(inference)
        if overlap:
            raise ValueError(f"client ids registered as both training and inference clients: {sorted(overlap)}")
        self._host = host
        self._requested_port = port
        self._tenant = tenant
        self._tokens = Tokens(training_clients, inference, float(token_lifetime), token_prefix)
        self._user_data_dir = None if data_dir is None else Path(data_dir)
        self._certfile = None if certfile is None else str(certfile)
        self._keyfile = None if keyfile is None else str(keyfile)
        self._module_version_id = str(uuid.uuid4())

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ServerThread | None = None
        self._api_runner: web.AppRunner | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._ticker: threading.Thread | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._data_dir: Path | None = None
        self._port = 0

        self._trainings = Trainings(advance, steps_per_poll, float(seconds_per_step), status_case, fail_models)
        self._fault_queue: FaultQueue | None = None
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._callback_attempts: list[CallbackAttempt] = []
        self._counters = zero_counters()
        self._with_depth = 0
        self._upload_dirs: list[str] = []
        self._outbound = Outbound(self._lock, self._stopping, self._on_callback)
        self._foreign: ForeignListener | None = None

    # ------------------------------------------------------------------ lifecycle of the server

    def start(self) -> SestekEmulator:
        """Bind the port and serve from an event loop on a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        # aiohttp is imported here, not at module level: see the module docstring.
        from ._api import build_app
        from ._runner import ServerThread

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
        self._ssl_context = context
        self._faults_queue()
        server = ServerThread("sestek-emulator")
        server.start()
        try:
            app = build_app(self)
            runner, _, port = server.call(lambda: server.serve(app, self._host, self._requested_port, context))
        except BaseException:
            server.stop()
            raise
        self._server, self._api_runner, self._port = server, runner, port
        if self._trainings.advance == "time":
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
        server.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        self._server = self._api_runner = self._ticker = None
        if self._foreign is not None:
            self._foreign.stopped()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> SestekEmulator:
        # Re-entrant: a helper that wraps its work in ``with emulator:`` must not stop the caller's emulator.
        if self._server is None:
            self.start()
        self._with_depth += 1  # after start(): a start that fails has no __exit__ to undo it
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._with_depth -= 1
        if self._with_depth == 0:
            self.stop()

    @property
    def running(self) -> bool:
        """Whether the emulator is serving."""
        return self._server is not None

    def _tick_loop(self) -> None:
        # Time mode needs a clock even when nobody polls: a failed training must still call back.
        interval = min(0.1, self._trainings.seconds_per_step / 2)
        while not self._stopping.wait(interval):
            with self._lock:
                events = self._trainings.tick(time.monotonic())
            self._outbound.fire(events)

    # ------------------------------------------------------------------ the foreign listener

    def _foreign_listener(self) -> ForeignListener:
        if self._foreign is None:
            from ._foreign import ForeignListener

            self._foreign = ForeignListener()
        return self._foreign

    async def _foreign_base(self) -> str:
        """The foreign listener's base URL, starting it first if needed; runs on the server's loop."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = await self._foreign_listener().start(self._server, self._host, self._ssl_context)
        return self._base_url(host, port)

    @property
    def foreign_url(self) -> str:
        """
        Base URL of the foreign listener, the other origin ``redirect`` faults send clients to.

        It is started on first use (this property, or adding a ``redirect`` fault without ``location``).
        """
        server = self._server
        if server is None:
            raise RuntimeError("the emulator is not running")
        address = self._foreign_listener().address
        if address is not None:
            return self._base_url(*address)
        if server.in_loop():
            # Starting it means waiting on the loop this code runs on: await _foreign_base() there instead.
            raise RuntimeError("foreign_url cannot start the foreign listener from the emulator's own loop")
        return server.call(self._foreign_base)

    @property
    def foreign_requests(self) -> list[RecordedRequest]:
        """Requests that reached the foreign listener (a client followed a redirect), oldest first."""
        return self._foreign_listener().requests

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
        if not self._tokens.clients:
            raise LookupError("no training client registered")
        return next(iter(self._tokens.clients.items()))

    @property
    def inference_client(self) -> tuple[str, str]:
        """``(client_id, client_secret)`` of the first inference client."""
        if not self._tokens.inference_clients:
            raise LookupError("no inference client registered")
        return next(iter(self._tokens.inference_clients.items()))

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded API requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """TCP connections open right now: a client that closes its pool when done brings this to 0."""
        server, runner = self._server, self._api_runner
        return server.open_connections(runner) if server is not None and runner is not None else 0

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
            return self._faults_queue().faults()

    @property
    def trainings(self) -> dict[str, Training]:
        """Snapshot of the latest training of every model id."""
        with self._lock:
            snapshots, events = self._trainings.snapshots(time.monotonic())
        self._outbound.fire(events)
        return snapshots

    def add_fault(self, fault: Fault) -> None:
        """
        Queue a fault; faults are matched in the order they were added.

        :param fault: what to do and to which requests.
        """
        if fault.kind == "redirect" and fault.location is None and self._server is not None:
            # Started now, so the URL is known before the first redirect and the redirect is not slower.
            _ = self.foreign_url
        self._queue_fault(fault)

    def _queue_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults_queue().add(fault)

    def _faults_queue(self) -> FaultQueue:
        if self._fault_queue is None:
            # Imported late: the fault module is part of the server (aiohttp), see the module docstring.
            from ._faults import FaultQueue

            self._fault_queue = FaultQueue()
        return self._fault_queue

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults_queue().clear()

    def set_lifecycle(self, model_id: str | None = None, statuses: Sequence[str] | None = None) -> None:
        """
        Override the status sequence trainings go through.

        A per-model sequence wins over ``fail_models``; the global one still fails for them. A training
        only terminates when the last status is ``Completed`` or ``Failed`` (any case).

        :param model_id: the model to override, or ``None`` for every model without its own sequence.
        :param statuses: the sequence, or ``None`` to remove the override.
        """
        sequence = None
        if statuses is not None:
            sequence = tuple(statuses)
            if not sequence or not all(isinstance(s, str) and s for s in sequence):
                raise ValueError("statuses must be a non-empty list of non-empty strings")
        with self._lock:
            self._trainings.set_lifecycle(model_id, sequence)

    def fail_model(self, model_id: str, fail: bool = True) -> None:
        """
        Make (or stop making) trainings of ``model_id`` fail at the ``Training`` step.

        :param model_id: the model id.
        :param fail: ``False`` removes it from the failing set.
        """
        with self._lock:
            self._trainings.fail_model(model_id, fail)

    def reset(self) -> None:
        """Forget trainings, faults, recorded requests, callbacks and counters; keep clients and config."""
        with self._lock:
            upload_dirs, self._upload_dirs = self._upload_dirs, []
            self._trainings.reset()
            self._faults_queue().clear()
            self._requests.clear()
            self._callback_attempts.clear()
            self._counters = zero_counters()
        self._foreign_listener().clear()
        for directory in upload_dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def issue_token(self, inference: bool = False) -> str:
        """
        Issue an access token directly, for tests that are not about the token endpoint.

        :param inference: issue an ``AIModule`` token for the first inference client instead of a
            ``SestekAI_External`` one for the first training client.
        """
        client_id = self.inference_client[0] if inference else self.train_client[0]
        return self._tokens.issue(client_id, SCOPE_INFERENCE if inference else SCOPE_TRAINING)

    def state(self) -> dict[str, Any]:
        """Everything the admin ``GET /_emulator/state`` reports, as a dict."""
        from ._admin import state

        return state(self)

    # ------------------------------------------------------------------ shared with the routes

    def _on_callback(self, attempt: CallbackAttempt, succeeded: bool) -> None:
        with self._lock:
            self._callback_attempts.append(attempt)
            self._counters["callbacks_sent" if succeeded else "callbacks_failed"] += 1

    def _take_fault(self, endpoint: str, model_id: str | None, when: str, filtered: bool | None) -> Fault | None:
        with self._lock:
            return self._faults_queue().take(endpoint, model_id, when, filtered)

    def _inference_model_id(self, segment: str) -> str | None:
        # Tenants may contain hyphens themselves, so the split is by the known tenant, not the first "-".
        prefix = self._tenant + "-"
        if segment.startswith(prefix) and len(segment) > len(prefix):
            return segment[len(prefix) :]
        return None
