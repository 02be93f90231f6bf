"""
An in-process emulator of the Sestek AI (Knovvu) external training API and its token service.

It serves the documented endpoints over real HTTP (optionally HTTPS) so DAGs, hooks and triggers can
be exercised offline, and it can misbehave on request (:class:`Fault`) the way a real gateway does.
It deliberately shares no code or constants with the provider's client: a wrong path or field name
in the client must fail against the emulator, not be mirrored by it.

The facade holds two things: an :class:`~._state.EmulatorState` (everything the emulator remembers,
behind one lock) and, while running, a :class:`~._server.Server` (aiohttp.web on an event loop of its
own thread). aiohttp is imported only when an emulator starts, so importing this module (the pytest
plugin does, in every pytest run) stays cheap. The parts, by concern: :mod:`._lifecycle` (the pure
training state machine), :mod:`._faults` (the fault model and queue), :mod:`._redaction` (what records
keep of secrets), :mod:`._wire` (response formats), :mod:`._api` and its ``_api_*`` siblings (routes),
:mod:`._fault_delivery` and :mod:`._foreign` (fault injection), :mod:`._outbound` (callbacks, data
URLs), :mod:`._answers` (what inference answers from), :mod:`._admin`. Airflow is never imported.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import ssl
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._faults import Fault, needs_foreign_listener
from ._model import (
    DEFAULT_CLIENTS,
    DEFAULT_INFERENCE_CLIENTS,
    DEFAULT_TENANT,
    DEFAULT_TOKEN_LIFETIME,
    DEFAULT_TOKEN_PREFIX,
    SCOPE_INFERENCE,
    SCOPE_TRAINING,
    CallbackAttempt,
    RecordedRequest,
    Training,
)
from ._state import EmulatorState, TrainingConfig
from ._tokens import Tokens

if TYPE_CHECKING:
    from ._server import Server

__all__ = ["REMOTE_BIND_WARNING", "SestekEmulator", "is_loopback"]

_log = logging.getLogger(__name__)

#: What binding to another interface than loopback prints (the CLI) and logs (in code).
REMOTE_BIND_WARNING = (
    "the Sestek emulator listens on {host}, reachable from other machines: its admin API under "
    "/_emulator/ has no authentication (anyone who can reach the port can read the recorded requests, "
    "add faults and reset it)"
)


def is_loopback(host: str) -> bool:
    """
    Whether ``host`` names a loopback interface only (``127.0.0.0/8``, ``::1``, ``localhost``).

    :param host: the interface to bind, as given.
    """
    host = _bind_host(host)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name (or "", every interface): it may resolve to anything


def _bind_host(host: str) -> str:
    """How ``host`` is spelled for binding: ``[::1]`` as ``::1``, ``localhost.`` as ``localhost``."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost.":
        host = host[:-1]
    return host


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    # nan passes "<= 0" checks and inf never ends: both are typos, refused here as in the CLI.
    if integer:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= sys.maxsize:
            raise ValueError(f"{name} must be a positive whole number up to {sys.maxsize}, got {value!r}")
        return
    try:
        finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int beyond any float
        finite = False
    if not finite or value <= 0:  # type: ignore[operator]  # a number when finite
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")


class SestekEmulator:
    """
    A fake Sestek AI server: token service, training, progress and published-model inference.

    :param host: interface to listen on; anything but loopback needs ``allow_remote=True``.
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
    :param record_secrets: keep credentials (client secrets, tokens, the callback secret) verbatim in
        :attr:`requests`, :attr:`foreign_requests`, :attr:`trainings` and the admin API; by default they
        are replaced by markers (see :meth:`redacted`).
    :param allow_remote: allow a ``host`` other than loopback; the emulator then logs a warning that
        its admin API is unauthenticated.
    :raises ValueError: a value out of range (nothing is bound then).
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
        record_secrets: bool = False,
        allow_remote: bool = False,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError("port must be an integer from 0 to 65535")
        if not isinstance(host, str):
            raise ValueError(f"host must be a string, got {host!r}")
        for flag, flag_value in (("record_secrets", record_secrets), ("allow_remote", allow_remote)):
            # A string such as "false" (a pytest marker, a config file) is truthy: refused, not guessed.
            if not isinstance(flag_value, bool):
                raise ValueError(f"{flag} must be True or False, got {flag_value!r}")
        for name, text in (("tenant", tenant), ("token_prefix", token_prefix)):
            if not isinstance(text, str) or any(ord(char) < 32 or ord(char) == 127 for char in text):
                raise ValueError(f"{name} must be a string without control characters, got {text!r}")
        if isinstance(fail_models, str):
            raise ValueError(f"fail_models must be a list of model ids, not the string {fail_models!r}")
        if data_dir is not None and not str(data_dir):
            raise ValueError("data_dir must not be empty (None uses a temporary directory)")
        host = _bind_host(host)
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address: the emulator's admin API has no authentication, "
                "so binding elsewhere needs allow_remote=True (--allow-remote on the command line)"
            )
        if advance not in ("poll", "time"):
            raise ValueError("advance must be 'poll' or 'time'")
        if status_case not in ("title", "lower"):
            raise ValueError("status_case must be 'title' or 'lower'")
        _positive("steps_per_poll", steps_per_poll, integer=True)
        _positive("seconds_per_step", seconds_per_step)
        _positive("token_lifetime", token_lifetime)
        if max_recorded_requests is not None:
            _positive("max_recorded_requests", max_recorded_requests, integer=True)
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
        self._user_data_dir = None if data_dir is None else Path(data_dir)
        self._certfile = None if certfile is None else str(certfile)
        self._keyfile = None if keyfile is None else str(keyfile)
        tokens = Tokens(training_clients, inference, float(token_lifetime), token_prefix)
        training = TrainingConfig(advance, steps_per_poll, float(seconds_per_step), status_case, tuple(fail_models))
        self._state = EmulatorState(tenant, tokens, training, max_recorded_requests, bool(record_secrets))
        self._server: Server | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._data_dir: Path | None = None
        self._port = 0
        self._with_depth = 0

    # ------------------------------------------------------------------ lifecycle of the server

    def start(self) -> SestekEmulator:
        """Bind the port and serve from an event loop on a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        # The server modules import aiohttp: imported here, not at module level (see the module docstring).
        from ._server import Server

        context: ssl.SSLContext | None = None
        if self._certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._certfile, self._keyfile)
        if not is_loopback(self._host):
            _log.warning(REMOTE_BIND_WARNING.format(host=self._host))
        if self._user_data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="sestek-emulator-", ignore_cleanup_errors=True)
            self._data_dir = Path(self._tempdir.name)
        else:
            self._data_dir = self._user_data_dir
        (self._data_dir / "uploads").mkdir(parents=True, exist_ok=True)
        server = Server(self._state, self._host, self._requested_port, context)
        self._state.attach(self._data_dir)  # before serving: the first request may already upload
        try:
            server.start()
        except BaseException:
            self._state.detach()
            raise
        self._server, self._port = server, server.port
        _log.debug("Sestek emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and remove the temporary upload directory."""
        server = self._server
        if server is None:
            return
        self._state.stopping.set()  # first: waits inside handlers end, so closing does not wait on them
        server.stop()
        self._state.detach()
        self._server = None
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

    def _running_server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server

    # ------------------------------------------------------------------ the foreign listener

    @property
    def foreign_url(self) -> str:
        """
        Base URL of the foreign listener, the other origin ``redirect`` faults send clients to.

        It is started on first use (this property, or adding a ``redirect`` fault without ``location``).
        """
        return self._running_server().foreign_url()

    @property
    def foreign_requests(self) -> list[RecordedRequest]:
        """Requests that reached the foreign listener (a client followed a redirect), oldest first."""
        return self._state.foreign_requests()

    # ------------------------------------------------------------------ configuration and inspection

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return self._running_server().url

    @property
    def identity_url(self) -> str:
        """Base URL of the token service (the same server; the endpoint is ``/connect/token``)."""
        return self.url

    @property
    def tenant(self) -> str:
        """The tenant name."""
        return self._state.tenant

    @property
    def data_dir(self) -> Path:
        """Where uploads are written (after :meth:`start`)."""
        if self._data_dir is None:
            raise RuntimeError("the emulator is not running")
        return self._data_dir

    @property
    def train_client(self) -> tuple[str, str]:
        """``(client_id, client_secret)`` of the first training client."""
        clients = self._state.tokens.clients
        if not clients:
            raise LookupError("no training client registered")
        return next(iter(clients.items()))

    @property
    def inference_client(self) -> tuple[str, str]:
        """``(client_id, client_secret)`` of the first inference client."""
        clients = self._state.tokens.inference_clients
        if not clients:
            raise LookupError("no inference client registered")
        return next(iter(clients.items()))

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded API requests, in arrival order (credentials redacted, see :meth:`redacted`)."""
        return self._state.requests()

    def redacted(self, secret: str) -> str:
        """
        The marker recorded requests show instead of ``secret`` (``secret`` itself with ``record_secrets=True``).

        Lets a test check which credential arrived without the credential being recorded, e.g.
        ``record.form["callbackClientSecret"] == [emu.redacted("cb-secret")]``. The marker is a keyed hash
        private to this emulator: it tells nothing about the secret to anyone reading a log.

        :param secret: the value as the client sent it (an ``Authorization`` header's credential part,
            without the scheme).
        """
        redactor = self._state.redactor
        return secret if redactor.keep else redactor.marker(secret)

    @property
    def open_connections(self) -> int:
        """TCP connections open right now: a client that closes its pool when done brings this to 0."""
        return 0 if self._server is None else self._server.open_connections

    @property
    def counters(self) -> dict[str, int]:
        """A copy of the counters (token_requests, trainings_created, bytes_received, ...)."""
        return self._state.counters()

    @property
    def callback_attempts(self) -> list[CallbackAttempt]:
        """Callbacks the emulator tried to deliver, oldest first."""
        return self._state.callback_attempts()

    @property
    def faults(self) -> list[Fault]:
        """Faults not used up yet."""
        return self._state.faults()

    @property
    def trainings(self) -> dict[str, Training]:
        """Snapshot of the latest training of every model id (a callback secret as its marker)."""
        return self._state.trainings()

    def add_fault(self, fault: Fault) -> None:
        """
        Queue a fault; faults are matched in the order they were added.

        :param fault: what to do and to which requests.
        """
        if needs_foreign_listener(fault) and self._server is not None:
            # Started now, so the URL is known before the first redirect and the redirect is not slower.
            self._server.foreign_url()
        self._state.add_fault(fault)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._state.clear_faults()

    def set_lifecycle(self, model_id: str | None = None, statuses: Sequence[str] | None = None) -> None:
        """
        Override the status sequence trainings go through.

        A per-model sequence wins over ``fail_models``; the global one still fails for them. A training
        only terminates when the last status is ``Completed`` or ``Failed`` (any case).

        :param model_id: the model to override, or ``None`` for every model without its own sequence.
        :param statuses: the sequence, or ``None`` to remove the override.
        """
        self._state.set_lifecycle(model_id, statuses)

    def fail_model(self, model_id: str, fail: bool = True) -> None:
        """
        Make (or stop making) trainings of ``model_id`` fail at the ``Training`` step.

        :param model_id: the model id.
        :param fail: ``False`` removes it from the failing set.
        """
        self._state.fail_model(model_id, fail)

    def reset(self) -> None:
        """Forget trainings, faults, recorded requests, callbacks and counters; keep clients and config."""
        self._state.reset()

    def issue_token(self, inference: bool = False) -> str:
        """
        Issue an access token directly, for tests that are not about the token endpoint.

        :param inference: issue an ``AIModule`` token for the first inference client instead of a
            ``SestekAI_External`` one for the first training client.
        """
        client_id = self.inference_client[0] if inference else self.train_client[0]
        return self._state.tokens.issue(client_id, SCOPE_INFERENCE if inference else SCOPE_TRAINING)

    def state(self) -> dict[str, Any]:
        """Everything the admin ``GET /_emulator/state`` reports, as a dict."""
        server = self._server
        if server is None:
            return self._state.describe(None, None)
        return self._state.describe(server.url, server.started_foreign_url())
