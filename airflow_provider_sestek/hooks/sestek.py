"""
:class:`SestekHook`: connection, OAuth2 tokens and HTTP for the Sestek AI external training API.

The hook owns the transports only. What a request looks like and what an answer means lives in
:mod:`airflow_provider_sestek.api`; the sync side speaks it over a requests ``Session`` and the async
side (used by the trigger) over one shared ``aiohttp.ClientSession`` per event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar

import tenacity
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekConfigError,
    SestekError,
    SestekTransportError,
    SestekValidationError,
)

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import requests

log = logging.getLogger(__name__)

ClientKind = Literal["training", "inference"]
T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
# Cap on a server-requested Retry-After: a misbehaving gateway must not park a task for an hour.
MAX_RETRY_AFTER = 120.0
#: Largest response body read: Sestek answers are a few KiB; a misbehaving server or proxy must not
#: exhaust the memory of a worker, or of the triggerer that every deferred task shares.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# The library texts ("Connection broken: IncompleteRead(...)", "<ContentLengthError: 400 ...>") mislead.
_CUT_OFF = "The answer from {url} was cut off: the connection closed before the whole body arrived"
# A model id that is valid but never used: the cheap authenticated call of test_connection.
CONNECTION_TEST_MODEL_ID = "airflow-connection-test"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


@dataclass(frozen=True)
class SestekConnectionConfig:
    """
    Everything the transports need from an Airflow connection, validated once.

    :param conn_id: the connection id (for messages).
    :param base_url: API base URL.
    :param identity_url: token service base URL.
    :param client_id: training client id.
    :param client_secret: training client secret (not in ``repr``).
    :param tenant: tenant name, needed for inference URLs.
    :param inference_client_id: inference client id (falls back to the training client).
    :param inference_client_secret: inference client secret (not in ``repr``).
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param connect_timeout: seconds to connect.
    :param read_timeout: seconds to wait for response bytes.
    :param portal_url: template of a portal link, e.g. ``https://portal.example.com/models/{model_id}``.
    """

    conn_id: str
    base_url: str
    identity_url: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None
    inference_client_id: str | None = None
    inference_client_secret: str | None = field(default=None, repr=False)
    verify: bool | str = True
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    portal_url: str | None = None

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
        port: int | None = None,
    ) -> SestekConnectionConfig:
        """
        Build and validate the config from connection fields (pure: no lookup, no network).

        :param conn_id: connection id.
        :param host: the connection host (API base URL; a bare host name means https).
        :param login: client id.
        :param password: client secret.
        :param extra: the connection extra, already decoded.
        :param port: the connection port, added to a host that has none.
        """

        def get(key: str) -> Any:
            # Older connection forms stored custom fields as ``extra__sestek__<key>``.
            value = extra.get(key)
            if value in (None, ""):
                value = extra.get(f"extra__sestek__{key}")
            return None if value == "" else value

        if host and port and "://" not in host and ":" not in host:
            host = f"{host}:{port}"
        base_url = api.normalize_base_url(host, "host")
        identity = get("identity_url")
        identity_url = api.normalize_base_url(identity, "identity_url") if identity else base_url
        if not login:
            raise SestekConfigError("login", "the Client ID is empty")
        if not password:
            raise SestekConfigError("password", "the Client Secret is empty")
        inference_id, inference_secret = get("inference_client_id"), get("inference_client_secret")
        if bool(inference_id) != bool(inference_secret):
            raise SestekConfigError(
                "inference_client_id", "inference_client_id and inference_client_secret must be set together"
            )
        verify: bool | str = True
        raw_verify = get("verify")
        if raw_verify is not None:
            if isinstance(raw_verify, bool):
                verify = raw_verify
            elif str(raw_verify).strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                verify = _truthy(raw_verify)
            else:
                verify = str(raw_verify)
                if not os.path.exists(verify):
                    raise SestekConfigError(
                        "verify", f"CA bundle {verify!r} does not exist (give true, false or a CA path)"
                    )
        read_timeout = DEFAULT_READ_TIMEOUT
        raw_timeout = get("timeout")
        if raw_timeout is not None:
            try:
                read_timeout = float(raw_timeout)
            except (TypeError, ValueError):
                raise SestekConfigError("timeout", f"{raw_timeout!r} is not a number of seconds") from None
            if read_timeout <= 0:
                raise SestekConfigError("timeout", f"{raw_timeout!r} must be a positive number of seconds")
        tenant = get("tenant")
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            identity_url=identity_url,
            client_id=str(login),
            client_secret=str(password),
            tenant=str(tenant) if tenant else None,
            inference_client_id=str(inference_id) if inference_id else None,
            inference_client_secret=str(inference_secret) if inference_secret else None,
            verify=verify,
            connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, read_timeout),
            read_timeout=read_timeout,
            portal_url=get("portal_url"),
        )

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return api.token_url(self.identity_url)

    def credentials(self, kind: ClientKind) -> tuple[str, str]:
        """
        Client id and secret for a kind of call; inference falls back to the training client.

        :param kind: ``training`` or ``inference``.
        """
        if kind == "inference" and self.inference_client_id and self.inference_client_secret:
            return self.inference_client_id, self.inference_client_secret
        return self.client_id, self.client_secret

    def token_key(self, kind: ClientKind) -> tuple[str, str, str]:
        """
        Cache key of a client's token. A digest of the secret is part of it, so a connection with a wrong
        secret never borrows the token another connection earned with the right one.

        :param kind: ``training`` or ``inference``.
        """
        client_id, secret = self.credentials(kind)
        return self.token_url, client_id, hashlib.sha256(secret.encode()).hexdigest()[:16]


class _TokenCache:
    """Process-wide token cache: one token per client, refreshed before expiry, single-flight."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], api.Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: tuple[str, str, str]) -> api.Token | None:
        token = self._tokens.get(key)
        return token if token is not None and token.fresh() else None

    def put(self, key: tuple[str, str, str], token: api.Token) -> None:
        self._tokens[key] = token

    def invalidate(self, key: tuple[str, str, str], access_token: str) -> None:
        """Drop the token only if it is still the one that was refused (another caller may have refreshed)."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and current.access_token == access_token:
                del self._tokens[key]

    def fetch_lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def async_fetch_lock(self, key: tuple[str, str, str]) -> asyncio.Lock:
        # asyncio locks belong to one loop; the triggerer has one, tests may create several.
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._async_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKEN_CACHE = _TokenCache()


@dataclass(eq=False)
class _LoopPool:
    """
    The async transport's state for one event loop. Only that loop's thread touches it, so it needs no lock.

    :param users: leases held: requests in flight and triggers waiting.
    :param sessions: one pooled session per TLS setting.
    :param slots: the requests in flight, at most the pool limit.
    """

    users: int = 0
    sessions: dict[bool | str, aiohttp.ClientSession] = field(default_factory=dict)
    slots: asyncio.Semaphore | None = None

    def session(self, verify: bool | str, max_connections: int) -> aiohttp.ClientSession:
        import aiohttp

        client = self.sessions.get(verify)
        if client is None or client.closed:
            connector = aiohttp.TCPConnector(
                limit=max_connections, ssl=_ssl_context(verify), keepalive_timeout=ASYNC_KEEPALIVE
            )
            # Proxies come from proxy_for(), resolved once per origin: aiohttp's trust_env would look
            # them (and ~/.netrc) up in a thread on every request.
            client = self.sessions[verify] = aiohttp.ClientSession(connector=connector, trust_env=False)
        return client

    def limit(self, max_connections: int) -> asyncio.Semaphore:
        """
        The requests in flight on this loop, at most ``max_connections``: thousands of triggers polling at
        once (after a triggerer restart) wait here, at O(1) each.
        """
        if self.slots is None:
            self.slots = asyncio.Semaphore(max_connections)
        return self.slots


class _AsyncClients:
    """
    One pooled ``aiohttp.ClientSession`` per event loop and TLS setting, shared by every trigger in it.

    aiohttp rather than httpx: a progress poll costs about a fifth of the CPU, and httpcore's pool rescans
    every pooled connection (a socket syscall each) and every queued request whenever a request starts or
    ends, so a triggerer polling thousands of trainings spent its whole loop in the pool.
    """

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = weakref.WeakKeyDictionary()
        self._proxies: dict[str, str | None] = {}
        self._lock = threading.Lock()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[_LoopPool]:
        """
        This loop's pool, kept open while the block runs; the last lease to end closes its sessions.

        Every request holds a lease, and so does a trigger for its whole wait: thousands of triggers share
        warm connections, while a loop with nothing in flight holds no session. An open session outliving
        its loop (``asyncio.run``, ``dag.test()``) cannot be closed any more and aiohttp reports it as
        unclosed at exit.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = _LoopPool()
        pool.users += 1
        try:
            yield pool
        finally:
            pool.users -= 1
            if pool.users == 0:
                # Sessions and the semaphore hold their loop strongly, which would pin the weak key.
                with self._lock:
                    del self._pools[loop]
                for client in pool.sessions.values():
                    await client.close()

    def proxy_for(self, url: str) -> str | None:
        """
        The proxy of the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) for a URL.

        :param url: the request URL.
        """
        import urllib.parse
        import urllib.request

        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            proxies = urllib.request.getproxies_environment()
            proxy = proxies.get(parts.scheme) or proxies.get("all")
            if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
                proxy = None
            self._proxies[origin] = proxy
        return self._proxies[origin]


#: Seconds an idle pooled connection of the async transport stays open.
ASYNC_KEEPALIVE = 5.0


def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """
    TLS settings of the async transport, with the trust store the sync side (requests) uses: certifi's
    bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, or the CA file or directory given.

    :param verify: ``True``, ``False`` or a CA bundle path.
    """
    import ssl

    if verify is False:
        return False
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


ASYNC_CLIENTS = _AsyncClients()


def _too_large(method: str, url: str, status: int, limit: int) -> SestekApiError:
    return SestekApiError(
        method=method,
        endpoint=url,
        status=status,
        message=f"response body is larger than {limit:,} bytes (max_response_bytes); not read further. "
        "Sestek answers are a few KiB: check that the connection points at the Sestek API",
    )


def _read_capped(response: requests.Response, limit: int, method: str, url: str) -> bytes:
    """The body of a streamed requests response, refusing more than ``limit`` bytes."""
    status = response.status_code
    length = response.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise _too_large(method, url, status, limit)
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise _too_large(method, url, status, limit)
    return bytes(body)


async def _aread_capped(response: Any, limit: int, method: str, url: str) -> bytes:
    """The body of an aiohttp response, refusing more than ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise _too_large(method, url, response.status, limit)
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise _too_large(method, url, response.status, limit)
    return bytes(body)


def _describe_exception(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class SestekHook(BaseHook):
    """
    Talk to the Sestek AI (Knovvu) external training API.

    Tokens are cached process-wide per client and refreshed a margin before they expire; many threads
    or coroutines asking at once cause one token request. Transient failures (connection errors,
    timeouts, 429, 502/503/504, and 500 on GET) are retried with exponential backoff and jitter,
    honouring ``Retry-After``, within ``retry_limit`` attempts and ``retry_deadline`` seconds. A train
    POST that may have reached the server is never repeated blindly: the caller decides (the operator
    re-attaches to the training it finds).

    :param sestek_conn_id: the Airflow connection id of type ``sestek``.
    :param retry_limit: retries after the first attempt for transient failures.
    :param retry_delay: first backoff delay in seconds (doubles each retry, with jitter).
    :param retry_max_delay: longest single backoff delay in seconds.
    :param retry_deadline: longest total time, in seconds, spent retrying one call.
    """

    conn_name_attr = "sestek_conn_id"
    default_conn_name = "sestek_default"
    conn_type = "sestek"
    hook_name = "Sestek AI"
    # Bound on the async pool shared by all triggers of one event loop.
    async_max_connections = 100
    #: Longest response body read, in bytes (a larger one is an error, not read further).
    max_response_bytes = MAX_RESPONSE_BYTES

    def __init__(
        self,
        sestek_conn_id: str = default_conn_name,
        *,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        retry_deadline: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if retry_limit < 0:
            raise SestekValidationError("retry_limit", retry_limit, "must be 0 or more")
        self.sestek_conn_id = sestek_conn_id
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.retry_max_delay = retry_max_delay
        self.retry_deadline = retry_deadline
        self._config: SestekConnectionConfig | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sestek_conn_id={self.sestek_conn_id!r})"

    # --- connection UI (Airflow 2.11 - 3.1; 3.2+ reads the provider info) --------------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form on Airflow versions that build it from the hook."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        from airflow_provider_sestek.get_provider_info import CONN_FIELDS

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            secret = spec["schema"].get("format") == "password"
            field_class = PasswordField if secret else StringField
            widget = BS3PasswordFieldWidget() if secret else BS3TextFieldWidget()
            widgets[name] = field_class(lazy_gettext(spec["label"]), widget=widget, description=spec["description"])
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled, hidden and placeholder fields of the connection form (Airflow 2.11 - 3.1)."""
        from airflow_provider_sestek.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    # --- configuration -------------------------------------------------------------------------------

    @property
    def config(self) -> SestekConnectionConfig:
        """The validated connection settings (looked up once per hook)."""
        if self._config is None:
            conn = self.get_connection(self.sestek_conn_id)
            self._config = SestekConnectionConfig.from_connection(
                self.sestek_conn_id, conn.host, conn.login, conn.password, conn.extra_dejson, conn.port
            )
        return self._config

    async def aconfig(self) -> SestekConnectionConfig:
        """The validated connection settings, looked up without blocking the event loop."""
        if self._config is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            conn = await get_async_connection(self.sestek_conn_id)
            extra = await get_async_extra_dejson(conn)
            self._config = SestekConnectionConfig.from_connection(
                self.sestek_conn_id, conn.host, conn.login, conn.password, extra, conn.port
            )
        return self._config

    # --- retries -------------------------------------------------------------------------------------

    def _retry_kwargs(self, endpoint: str, idempotent: bool) -> dict[str, Any]:
        # Jitter scales with the first delay (tenacity's default is a flat 1 s whatever the delay). Built from
        # wait_exponential + wait_random: wait_exponential_jitter names the first delay `initial` before
        # tenacity 9.1 and warns about it since, so no spelling works across the versions Airflow allows.
        backoff = tenacity.wait_exponential(multiplier=self.retry_delay, max=self.retry_max_delay) + (
            tenacity.wait_random(0, self.retry_delay)
        )

        def should_retry(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, SestekTransportError):
                return idempotent or not exc.maybe_sent
            if isinstance(exc, SestekApiError):
                if 200 <= exc.status < 300:
                    # A success answer with an unreadable body (cut off, garbled by a proxy): ask again,
                    # unless it was the train POST, which did take effect (the caller checks progress).
                    return idempotent
                # 429 is an explicit "not processed": safe to repeat even for the train POST.
                return api.is_retryable_status(exc.status, "GET" if idempotent else "POST") and (
                    idempotent or exc.status == 429
                )
            return False

        def wait(state: tenacity.RetryCallState) -> float:
            delay = min(backoff(state), self.retry_max_delay)
            exc = state.outcome.exception() if state.outcome else None
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
            return delay

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            self.log.warning(
                "Sestek %s: attempt %d failed (%s); retrying in %.1fs",
                endpoint,
                state.attempt_number,
                _describe_exception(exc) if exc else "no result",
                sleep,
            )

        return {
            "retry": should_retry,
            "wait": wait,
            "stop": tenacity.stop_after_attempt(self.retry_limit + 1) | tenacity.stop_after_delay(self.retry_deadline),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def _with_retries(self, endpoint: str, idempotent: bool, attempt: Callable[[], T]) -> T:
        for try_ in tenacity.Retrying(**self._retry_kwargs(endpoint, idempotent)):
            with try_:
                return attempt()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    # --- sync transport ------------------------------------------------------------------------------

    @cached_property
    def _session(self) -> requests.Session:
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = _user_agent()
        return session

    def get_conn(self) -> requests.Session:
        """The requests session used for sync calls (proxies from the environment are honoured)."""
        return self._session

    def _send(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        data: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        import requests

        cfg = self.config
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                json=json_body,
                headers=all_headers,
                timeout=(cfg.connect_timeout, cfg.read_timeout),
                verify=cfg.verify,
                stream=True,
            )
            with response:
                body = _read_capped(response, self.max_response_bytes, method, url)
        except requests.exceptions.SSLError as exc:
            raise SestekTransportError(
                f"TLS error talking to {url}: {_describe_exception(exc)}. Set the connection extra 'verify' to the "
                "CA bundle path of the server (or false to skip verification, not recommended)",
                maybe_sent=False,
            ) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise SestekTransportError(
                f"Timed out connecting to {url}: {_describe_exception(exc)}", maybe_sent=False
            ) from None
        except requests.exceptions.ReadTimeout:
            raise SestekTransportError(f"No answer from {url} within {cfg.read_timeout:.0f}s (read timeout)") from None
        except requests.exceptions.ConnectionError as exc:
            raise SestekTransportError(
                f"Connection to {url} failed: {_describe_exception(exc)}", maybe_sent=not _refused(exc)
            ) from None
        except requests.exceptions.ChunkedEncodingError:
            raise SestekTransportError(_CUT_OFF.format(url=url)) from None
        except requests.exceptions.RequestException as exc:
            raise SestekTransportError(f"Request to {url} failed: {_describe_exception(exc)}") from None
        return response.status_code, response.headers, body

    def get_token(self, kind: ClientKind = "training") -> str:
        """
        An access token for the training client (or the inference client), from the process-wide cache.

        :param kind: ``training`` or ``inference``.
        """
        cfg = self.config
        key = cfg.token_key(kind)
        cached = TOKEN_CACHE.get(key)
        if cached is not None:
            return cached.access_token
        with TOKEN_CACHE.fetch_lock(key):
            cached = TOKEN_CACHE.get(key)
            if cached is not None:
                return cached.access_token
            client_id, secret = cfg.credentials(kind)

            def attempt() -> api.Token:
                sent = time.time()
                status, headers, body = self._send("POST", cfg.token_url, data=api.token_form(client_id, secret))
                if status != 200:
                    raise api.error_from_response("POST", cfg.token_url, status, headers, body)
                return api.parse_token(status, body, cfg.token_url, now=sent)

            token = self._with_retries("token", True, attempt)
            _mask(token.access_token)
            TOKEN_CACHE.put(key, token)
            self.log.info("Obtained a Sestek %s token (scope %s) for client %s", kind, token.scope, client_id)
            return token.access_token

    def _call(
        self,
        method: str,
        url: str,
        *,
        kind: ClientKind = "training",
        idempotent: bool,
        endpoint: str,
        body_factory: Callable[[ExitStack], tuple[Any, Mapping[str, str]]] | None = None,
        json_body: Any = None,
    ) -> tuple[int, bytes]:
        """Authenticated call with retries; one token refresh on 401. Returns status and body of a 2xx."""
        return self._call_parsed(
            method,
            url,
            lambda status, body: (status, body),
            kind=kind,
            idempotent=idempotent,
            endpoint=endpoint,
            body_factory=body_factory,
            json_body=json_body,
        )

    def _call_parsed(
        self,
        method: str,
        url: str,
        parse: Callable[[int, bytes], T],
        *,
        kind: ClientKind = "training",
        idempotent: bool,
        endpoint: str,
        body_factory: Callable[[ExitStack], tuple[Any, Mapping[str, str]]] | None = None,
        json_body: Any = None,
    ) -> T:
        """
        Like :meth:`_call`, and ``parse(status, body)`` of the 2xx answer runs inside the retry: an unreadable
        answer of an idempotent call is asked for again like any transient failure.
        """
        cfg = self.config
        key = cfg.token_key(kind)

        def attempt() -> T:
            refreshed = False
            while True:
                token = self.get_token(kind)
                with ExitStack() as stack:
                    data, headers = body_factory(stack) if body_factory else (None, {})
                    status, resp_headers, body = self._send(
                        method, url, token=token, data=data, json_body=json_body, headers=headers
                    )
                if status == 401 and not refreshed:
                    # Revoked or expired early: one fresh token, then the 401 stands.
                    self.log.info("Sestek %s answered 401; refreshing the %s token once", endpoint, kind)
                    TOKEN_CACHE.invalidate(key, token)
                    refreshed = True
                    continue
                if 200 <= status < 300:
                    return parse(status, body)
                raise api.error_from_response(method, url, status, resp_headers, body, inference=kind == "inference")

        return self._with_retries(endpoint, idempotent, attempt)

    def get_training_progress(self, model_id: str) -> api.TrainingProgress:
        """
        Read a training's progress. Polling after ``Completed`` is what publishes the model.

        :param model_id: the model id.
        """
        api.validate_model_id(model_id)
        url = api.progress_url(self.config.base_url, model_id)
        return self._call_parsed(
            "GET",
            url,
            lambda status, body: api.parse_progress_response(status, body, url),
            idempotent=True,
            endpoint="progress",
        )

    def prepare_training(
        self,
        model_id: str,
        project_name: str,
        data_files: Iterable[str | os.PathLike[str]] | str | None = (),
        data_urls: Iterable[str] | str | None = (),
        callback: api.CallbackConfig | None = None,
    ) -> TrainingRequest:
        """
        Validate a training request without sending anything (no Sestek call is made).

        :param model_id: lowercase letters, digits and ``-``, at most 63 characters.
        :param project_name: Sestek project name.
        :param data_files: local paths or object-storage URLs (``s3://``, ``file://`` ...).
        :param data_urls: http(s) URLs the server downloads.
        :param callback: optional callback settings.
        """
        api.validate_model_id(model_id)
        api.validate_project_name(project_name)
        files = [_check_data_file(f, i) for i, f in enumerate(api.as_list(data_files))]  # type: ignore[arg-type]
        urls = [api.validate_http_url(u, f"data_urls[{i}]") for i, u in enumerate(api.as_list(data_urls))]
        if not files and not urls:
            raise SestekValidationError("data_files", None, "give at least one of data_files or data_urls")
        api.validate_callback(callback)
        return TrainingRequest(model_id, project_name, tuple(files), tuple(urls), callback)

    def submit_training(
        self,
        model_id: str | TrainingRequest,
        project_name: str | None = None,
        data_files: Iterable[str | os.PathLike[str]] | str | None = (),
        data_urls: Iterable[str] | str | None = (),
        callback: api.CallbackConfig | None = None,
    ) -> dict[str, Any]:
        """
        Start a Generative-QA training, streaming the files (memory stays flat whatever their size).

        Everything is validated before any request. The POST is retried only when it certainly did not
        reach the server (connection refused, 429); after a dropped connection or a gateway error the
        error is raised (``SestekTransportError.maybe_sent``, ``SestekApiError``) and the caller checks
        the progress before trying again: the operator re-attaches to the training it finds.

        :param model_id: lowercase letters, digits and ``-``, at most 63 characters (or a request from
            :meth:`prepare_training`, then the other arguments are ignored).
        :param project_name: Sestek project name.
        :param data_files: local paths or object-storage URLs (``s3://``, ``file://`` ...), one ``dataFiles`` part each.
        :param data_urls: http(s) URLs the server downloads, one ``dataUrls`` field each.
        :param callback: optional callback settings.
        :return: the experiment object the server returned.
        """
        if isinstance(model_id, TrainingRequest):
            request = model_id
        else:
            request = self.prepare_training(model_id, project_name or "", data_files, data_urls, callback)
        fields = api.training_form_fields(request.model_id, request.project_name, request.data_urls, request.callback)
        url = api.train_url(self.config.base_url)
        self.log.info(
            "Submitting Sestek training of model %s (project %r): %d file(s), %d URL(s)",
            request.model_id,
            request.project_name,
            len(request.data_files),
            len(request.data_urls),
        )

        def body_factory(stack: ExitStack) -> tuple[Any, Mapping[str, str]]:
            parts: list[tuple[str, Any]] = list(fields)
            for source in request.data_files:
                handle = stack.enter_context(source.open())
                parts.append(("dataFiles", (source.name, handle, source.content_type)))
            body = MultipartBody(parts)
            return body, {"Content-Type": body.content_type}

        status, body = self._call("POST", url, idempotent=False, endpoint="train", body_factory=body_factory)
        return api.parse_experiment(status, body, url)

    def ask(
        self,
        model_id: str,
        query: str | Sequence[str],
        prompt: str | None = None,
        chat_history: Sequence[Any] | None = None,
        use_semantic_cache: bool | None = None,
        semantic_cache_threshold: float | None = None,
    ) -> dict[str, Any]:
        """
        Ask the published model; uses the inference client's token.

        :param model_id: the model id.
        :param query: one question or a list of questions.
        :param prompt: optional instructions.
        :param chat_history: ``[user, assistant]`` message pairs.
        :param use_semantic_cache: let the server answer from its semantic cache.
        :param semantic_cache_threshold: similarity needed for a cache hit (0-1).
        :return: ``{"result": [...]}``, one result per question.
        """
        api.validate_model_id(model_id)
        queries = api.as_list(query)
        body = api.inference_body(queries, prompt, chat_history, use_semantic_cache, semantic_cache_threshold)
        cfg = self.config
        if not cfg.tenant:
            raise SestekConfigError("tenant", "the tenant name is needed to reach a published model")
        url = api.inference_url(cfg.base_url, cfg.tenant, model_id)
        results = self._call_parsed(
            "POST",
            url,
            lambda status, raw: api.parse_inference(status, raw, url),
            kind="inference",
            idempotent=True,
            endpoint="inference",
            json_body=body,
        )
        return {"result": results}

    def test_connection(self) -> tuple[bool, str]:
        """Get a token, then make one authenticated call; the UI "Test" button shows the message."""
        try:
            cfg = self.config
            self.get_token("training")
            try:
                self.get_training_progress(CONNECTION_TEST_MODEL_ID)
            except SestekApiError as exc:
                if exc.status != 404:  # 404: authenticated and answered, just no such model.
                    raise
            message = f"Connected to {cfg.base_url}: token from {cfg.token_url} accepted by the training API."
            if cfg.inference_client_id:
                self.get_token("inference")
                message += " Inference client token obtained."
            return True, message
        except SestekError as exc:
            return False, str(exc)

    # --- async transport (used in the triggerer) -----------------------------------------------------

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[None]:
        """
        Keep the pooled async connections of the running event loop open for the block.

        Async calls outside it work too, but close their connection when nothing else on the loop is in
        flight; wrap a series of calls (as the trigger does for its wait) to reuse connections.
        """
        async with ASYNC_CLIENTS.lease():
            yield

    async def _asend(
        self, method: str, url: str, *, token: str | None = None, data: Any = None, json_body: Any = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with ASYNC_CLIENTS.lease() as pool:
            return await self._asend_on(pool, method, url, token=token, data=data, json_body=json_body)

    async def _asend_on(
        self, pool: _LoopPool, method: str, url: str, *, token: str | None, data: Any, json_body: Any
    ) -> tuple[int, Mapping[str, str], bytes]:
        import aiohttp

        cfg = await self.aconfig()
        client = pool.session(cfg.verify, self.async_max_connections)
        headers = {"User-Agent": _user_agent()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout, sock_read=cfg.read_timeout)
        slots = pool.limit(self.async_max_connections)
        try:
            async with asyncio.timeout(cfg.read_timeout):
                await slots.acquire()
        except TimeoutError:
            raise SestekTransportError(
                f"Connection to {url} failed: no free connection within {cfg.read_timeout:.0f}s", maybe_sent=False
            ) from None
        try:
            async with client.request(
                method,
                url,
                data=data,
                json=json_body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                proxy=ASYNC_CLIENTS.proxy_for(url),
            ) as response:
                body = await _aread_capped(response, self.max_response_bytes, method, url)
                return response.status, response.headers, body
        except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
            raise SestekTransportError(
                f"TLS error talking to {url}: {_describe_exception(exc)}. Set the connection extra 'verify' to the "
                "CA bundle path of the server",
                maybe_sent=False,
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise SestekTransportError(
                f"Connection to {url} failed: {_describe_exception(exc)}", maybe_sent=False
            ) from None
        except TimeoutError:
            raise SestekTransportError(f"No answer from {url} within {cfg.read_timeout:.0f}s (read timeout)") from None
        except aiohttp.ClientPayloadError:
            raise SestekTransportError(_CUT_OFF.format(url=url)) from None
        except aiohttp.ClientError as exc:
            raise SestekTransportError(f"Request to {url} failed: {_describe_exception(exc)}") from None
        finally:
            slots.release()

    async def _awith_retries(self, endpoint: str, idempotent: bool, attempt: Callable[[], Any]) -> Any:
        async for try_ in tenacity.AsyncRetrying(**self._retry_kwargs(endpoint, idempotent)):
            with try_:
                return await attempt()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def aget_token(self, kind: ClientKind = "training") -> str:
        """
        Async twin of :meth:`get_token`, sharing the same process-wide cache.

        :param kind: ``training`` or ``inference``.
        """
        cfg = await self.aconfig()
        key = cfg.token_key(kind)
        cached = TOKEN_CACHE.get(key)
        if cached is not None:
            return cached.access_token
        async with TOKEN_CACHE.async_fetch_lock(key):
            cached = TOKEN_CACHE.get(key)
            if cached is not None:
                return cached.access_token
            client_id, secret = cfg.credentials(kind)

            async def attempt() -> api.Token:
                sent = time.time()
                status, headers, body = await self._asend("POST", cfg.token_url, data=api.token_form(client_id, secret))
                if status != 200:
                    raise api.error_from_response("POST", cfg.token_url, status, headers, body)
                return api.parse_token(status, body, cfg.token_url, now=sent)

            token: api.Token = await self._awith_retries("token", True, attempt)
            await _amask(token.access_token)
            TOKEN_CACHE.put(key, token)
            self.log.info("Obtained a Sestek %s token (scope %s) for client %s", kind, token.scope, client_id)
            return token.access_token

    async def aget_training_progress(self, model_id: str) -> api.TrainingProgress:
        """
        Async twin of :meth:`get_training_progress`.

        :param model_id: the model id.
        """
        api.validate_model_id(model_id)
        cfg = await self.aconfig()
        url = api.progress_url(cfg.base_url, model_id)
        key = cfg.token_key("training")

        async def attempt() -> api.TrainingProgress:
            refreshed = False
            while True:
                token = await self.aget_token("training")
                status, headers, body = await self._asend("GET", url, token=token)
                if status == 401 and not refreshed:
                    self.log.info("Sestek progress answered 401; refreshing the training token once")
                    TOKEN_CACHE.invalidate(key, token)
                    refreshed = True
                    continue
                if status == 200:
                    return api.parse_progress_response(status, body, url)
                raise api.error_from_response("GET", url, status, headers, body)

        result: api.TrainingProgress = await self._awith_retries("progress", True, attempt)
        return result


# --- data files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRequest:
    """
    A validated training request, ready to send.

    :param model_id: the model id.
    :param project_name: the project name.
    :param data_files: validated files.
    :param data_urls: validated URLs.
    :param callback: callback settings.
    """

    model_id: str
    project_name: str
    data_files: tuple[_DataFile, ...]
    data_urls: tuple[str, ...]
    callback: api.CallbackConfig | None = None


@dataclass(frozen=True)
class _DataFile:
    """A validated training file: local path or object-storage path, opened only when sending."""

    name: str
    location: str
    content_type: str
    remote: bool

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.remote:
            from airflow.providers.common.compat.sdk import ObjectStoragePath

            with ObjectStoragePath(self.location).open("rb") as handle:  # type: ignore[no-untyped-call]
                yield handle
        else:
            with open(self.location, "rb") as handle:
                yield handle


def _check_data_file(entry: str | os.PathLike[str], index: int) -> _DataFile:
    field_name = f"data_files[{index}]"
    location = os.fspath(entry) if isinstance(entry, os.PathLike) else entry
    if not isinstance(location, str) or not location.strip():
        raise SestekValidationError(field_name, location, "must be a non-empty file path or object-storage URL")
    if location.startswith(("http://", "https://")):
        raise SestekValidationError(field_name, location, "is a web URL; pass it in data_urls so Sestek downloads it")
    name = os.path.basename(location.rstrip("/")) or location
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if "://" in location and not location.startswith("file://"):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        path = ObjectStoragePath(location)
        if not path.exists():
            raise SestekValidationError(field_name, location, "does not exist in object storage")
        if not path.is_file():
            raise SestekValidationError(field_name, location, "is not a file")
        return _DataFile(name, location, content_type, remote=True)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if not os.path.exists(location):
        raise SestekValidationError(field_name, location, "file does not exist")
    if os.path.isdir(location):
        raise SestekValidationError(field_name, location, "is a directory; list the files in it instead")
    if not os.path.isfile(location):
        raise SestekValidationError(field_name, location, "is not a regular file")
    if not os.access(location, os.R_OK):
        raise SestekValidationError(field_name, location, "is not readable by the worker")
    return _DataFile(name, location, content_type, remote=False)


# --- helpers --------------------------------------------------------------------------------------

#: Bytes read from a data file per block of a training upload (the HTTP client asks for 16 KiB).
UPLOAD_BLOCK_SIZE = 512 * 1024


class MultipartBody:
    """
    A ``multipart/form-data`` body streamed from open files, block by block: memory stays flat whatever
    the file size, and each block is read from the file once and handed to the socket without copies.

    The bytes are those requests_toolbelt's ``MultipartEncoder`` produces (urllib3 renders the part
    headers), which on a large file spends most of its time copying through its buffer: 3-4x slower than
    the network on loopback.

    :param fields: ``(name, value)`` pairs; a value is a string or ``(filename, file, content_type)``
        with a file open in binary mode, sent from its current position to its end.
    :param boundary: the boundary (a random one by default).
    """

    def __init__(self, fields: Sequence[tuple[str, Any]], boundary: str | None = None) -> None:
        import uuid

        from urllib3.fields import RequestField

        self.boundary = boundary or uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        delimiter = f"--{self.boundary}\r\n".encode()
        #: The body as a list of byte strings and ``(file, length)`` pairs, in order.
        self._segments: list[bytes | tuple[IO[bytes], int]] = []
        pending = b""
        for name, value in fields:
            if isinstance(value, tuple):
                filename, data, content_type = value
            else:
                filename, data, content_type = None, value, None
            part = RequestField(name=name, data=data, filename=filename)
            part.make_multipart(content_type=content_type)
            pending += delimiter + part.render_headers().encode("utf-8")
            if isinstance(data, str | bytes):
                pending += (data.encode("utf-8") if isinstance(data, str) else data) + b"\r\n"
            else:
                self._segments += [pending, (data, _remaining_bytes(data))]
                pending = b"\r\n"
        self._segments.append(pending + f"--{self.boundary}--\r\n".encode())
        #: Body length in bytes (requests sends it as Content-Length).
        self.len = sum(len(s) if isinstance(s, bytes) else s[1] for s in self._segments)
        self._index = 0
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        """
        The next bytes of the body, at least ``UPLOAD_BLOCK_SIZE`` of them unless the body ends first;
        ``b""`` at the end.

        :param size: bytes wanted; a smaller number than the block size is raised to it, -1 reads all.
        """
        size = self.len if size is None or size < 0 else max(size, UPLOAD_BLOCK_SIZE)
        chunks: list[bytes] = []
        while size > 0 and self._index < len(self._segments):
            segment = self._segments[self._index]
            if isinstance(segment, bytes):
                chunk = segment[self._offset : self._offset + size]
                left = len(segment) - self._offset - len(chunk)
            else:
                handle, length = segment
                chunk = handle.read(min(size, length - self._offset))
                if not chunk and length > self._offset:
                    raise SestekError(f"A data file ended {length - self._offset} bytes early while uploading it")
                left = length - self._offset - len(chunk)
            self._offset += len(chunk)
            if left <= 0:
                self._index += 1
                self._offset = 0
            chunks.append(chunk)
            size -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _remaining_bytes(handle: IO[bytes]) -> int:
    """Bytes from a file's current position to its end (local files and object-storage files alike)."""
    import io

    position = handle.tell()
    try:
        return os.fstat(handle.fileno()).st_size - position
    except (OSError, io.UnsupportedOperation, AttributeError):
        end = handle.seek(0, os.SEEK_END)
        handle.seek(position)
        return end - position


def _refused(exc: BaseException) -> bool:
    """True when a requests ConnectionError certainly never reached the server (refused, DNS)."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | NameResolutionError):
            return True
        linked = [getattr(item, "reason", None), item.__cause__, item.__context__, *getattr(item, "args", ())]
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return False


def _user_agent() -> str:
    from airflow_provider_sestek import __version__

    return f"airflow-provider-sestek/{__version__}"


def _mask(secret: str) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)


async def _amask(secret: str) -> None:
    # On Airflow 3 the sync mask_secret also tells the supervisor with a blocking send; the async
    # variant avoids stalling (or deadlocking) the triggerer's loop.
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        _mask(secret)
    else:
        await amask_secret(secret)


def clear_token_cache() -> None:
    """Forget every cached token of this process (for tests and credential rotation)."""
    TOKEN_CACHE.clear()


__all__ = ["SestekConnectionConfig", "SestekHook", "TrainingRequest", "clear_token_cache"]
