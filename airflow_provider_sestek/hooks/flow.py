"""
The decisions of an authenticated Sestek call, written once for both transports (sans-IO).

A flow is a generator, in the manner of httpx's ``Auth.auth_flow``: it yields *steps* ("send this
request", "sleep this long", "take the token lock", "mask this secret") and receives what each step
produced, or has the step's :class:`SestekError` thrown into it. The sync transport (requests, in the
worker) and the async one (aiohttp, in the triggerer) only carry out steps; everything that decides lives
here (:mod:`.flow_run` steps it for them): which token to attach, the single refresh on 401, that a 3xx is an
error and never followed, that any 2xx is a success, the cap on the answer's size, the mapping of errors and when
to retry.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekError, SestekTransportError
from airflow_provider_sestek.hooks.config import MAX_RESPONSE_BYTES, ClientKind, SestekConnectionConfig
from airflow_provider_sestek.hooks.retry import Retries, RetryPolicy
from airflow_provider_sestek.hooks.tokens import TOKEN_CACHE, TokenCache, TokenKey

T = TypeVar("T")


class UploadBody(Protocol):
    """
    A request body streamed from files (the training upload): what requests needs to send it, and the
    secret values its fields carry (see :func:`airflow_provider_sestek.api.secret_values`).
    """

    len: int
    content_type: str
    secrets: frozenset[str]

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Request:
    """
    One HTTP request to send, with its limits.

    :param method: HTTP method.
    :param url: absolute URL.
    :param headers: request headers.
    :param body: bytes, a streamed upload, or ``None``.
    :param timeout: total deadline in seconds: connecting, sending and the whole answer. For an upload,
        the answer's deadline starts once the body is sent (a large file may take minutes); while it is
        being sent the limit is on stalls (``connect_timeout`` per write).
    :param connect_timeout: seconds to connect.
    :param limit: most response bytes read; more is reported in :attr:`Reply.too_large`.
    :param secrets: every secret value the request carries (its bearer token, the client secret of a token
        form, the callback client secret of a training form) and the connection's client secrets: no text
        built from its answer (or from a transport's error about it) quotes them.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | UploadBody | None
    timeout: float
    connect_timeout: float
    limit: int
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def is_upload(self) -> bool:
        """The body is streamed from files."""
        return self.body is not None and not isinstance(self.body, bytes)


@dataclass(frozen=True, slots=True)
class Reply:
    """
    What came back: the status, the headers and at most ``limit`` bytes of the body.

    :param status: HTTP status.
    :param headers: response headers (a case-insensitive mapping).
    :param body: the body.
    :param too_large: the body was longer than the request's limit and was not read to its end.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    """Step: send the request; the flow receives the :class:`Reply`."""

    request: Request


@dataclass(frozen=True, slots=True)
class Sleep:
    """Step: wait before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Lock:
    """Step: take the single-flight lock of a client's token, waiting at most ``timeout`` seconds."""

    key: TokenKey
    timeout: float


@dataclass(frozen=True, slots=True)
class Unlock:
    """Step: release that lock if it is held."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class Mask:
    """Step: register a new token with Airflow's log masker."""

    secret: str = field(repr=False)


Step = Send | Sleep | Lock | Unlock | Mask
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Call(Generic[T]):
    """
    An authenticated API call.

    :param method: HTTP method.
    :param url: absolute URL (from :mod:`airflow_provider_sestek.api`).
    :param endpoint: ``progress``, ``train`` or ``inference``: for logs and the retry rule.
    :param parse: turns a 2xx status and body into the result; its third argument, the secrets the
        request carried, is what any error it raises must not quote (see :func:`api.excerpt`).
    :param kind: whose token: the ``training`` or the ``inference`` client.
    :param idempotent: may be repeated after a failure that may have reached the server.
    :param json_body: a JSON body.
    :param upload: builds a streamed body (called for every attempt).
    """

    method: str
    url: str
    endpoint: str
    parse: Callable[[int, bytes, frozenset[str]], T]
    kind: ClientKind = "training"
    idempotent: bool = True
    json_body: Any = None
    upload: Callable[[], UploadBody] | None = None


class CallFlow:
    """
    The flows of one connection.

    :param config: the connection settings.
    :param policy: the retry limits.
    :param log: where retries and token fetches are logged.
    :param user_agent: the ``User-Agent`` header.
    :param max_response_bytes: largest answer read.
    :param cache: the token cache.
    """

    def __init__(
        self,
        config: SestekConnectionConfig,
        policy: RetryPolicy,
        log: Any,
        user_agent: str,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        cache: TokenCache = TOKEN_CACHE,
    ) -> None:
        self.config = config
        self.policy = policy
        self.log = log
        self.max_response_bytes = max_response_bytes
        self.cache = cache
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        # Kept out of every error too, whichever request it came from: a gateway may echo what an
        # earlier request of the connection sent.
        self._connection_secrets = frozenset(s for s in (config.client_secret, config.inference_client_secret) if s)

    def call(self, call: Call[T], stop_at: float | None = None) -> Flow[T]:
        """
        An authenticated call: token, one refresh on 401, retries of transient failures.

        :param call: what to call.
        :param stop_at: wall-clock time (epoch seconds) after which no new attempt starts.
        """
        retries: Retries | None = None
        refreshed = False
        while True:
            token = yield from self.token(call.kind, stop_at)
            try:
                _not_past(stop_at, call.url)
                request = self._request(call, token)
                reply = yield from self._send(request)
                if reply.status == 401 and not refreshed:
                    # Revoked or expired early: one fresh token, then a 401 stands.
                    self.log.info("Sestek %s answered 401; refreshing the %s token once", call.endpoint, call.kind)
                    self.cache.invalidate(self.config.token_key(call.kind), token)
                    refreshed = True
                    continue
                return self.outcome(request, reply, call.parse, inference=call.kind == "inference")
            except SestekError as exc:
                retries = retries or self.policy.start(call.endpoint, call.idempotent, self.log, stop_at)
                yield Sleep(retries.after(exc))

    def token(self, kind: ClientKind, stop_at: float | None = None) -> Flow[str]:
        """
        A fresh access token of a client: from the cache, or fetched by one caller while the others wait.

        The lock is held for one token request at most (bounded by the request deadline), never across a
        retry's sleep, so a slow token service delays the other callers by one deadline, not by a whole
        retry schedule.

        :param kind: ``training`` or ``inference``.
        :param stop_at: wall-clock time after which no new attempt starts.
        """
        key = self.config.token_key(kind)
        cached = self.cache.get(key)
        if cached is not None:
            return cached.access_token
        retries: Retries | None = None
        while True:
            try:
                # The holder sends one request bounded by its deadline; a little more covers the masking.
                yield Lock(key, self.config.timeout + 5.0)
                cached = self.cache.get(key)
                if cached is None:
                    _not_past(stop_at, self.config.token_url)
                    cached = yield from self._fetch_token(kind, key)
            except SestekError as exc:
                yield Unlock(key)
                retries = retries or self.policy.start("token", True, self.log, stop_at)
                yield Sleep(retries.after(exc))
                continue
            yield Unlock(key)
            return cached.access_token

    def _fetch_token(self, kind: ClientKind, key: TokenKey) -> Flow[api.Token]:
        cfg = self.config
        client_id, secret = cfg.credentials(kind)
        url = cfg.token_url
        fields = api.token_form(client_id, secret)
        form = urllib.parse.urlencode(fields).encode()
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        request = Request(
            "POST",
            url,
            headers,
            form,
            cfg.timeout,
            cfg.connect_timeout,
            self.max_response_bytes,
            secrets=api.secret_values(fields) | self._connection_secrets,
        )
        # The expiry counts from when the request was sent: the server issued the token after that.
        sent = time.time()
        reply = yield from self._send(request)
        token = self.outcome(request, reply, lambda status, body, _: api.parse_token(status, body, url, now=sent))
        yield Mask(token.access_token)
        self.cache.put(key, token)
        self.log.info("Obtained a Sestek %s token (scope %s) for client %s", kind, token.scope, client_id)
        return token

    def _request(self, call: Call[Any], token: str) -> Request:
        headers = {**self._headers, "Authorization": f"Bearer {token}"}
        body: bytes | UploadBody | None = None
        secrets = {token}
        if call.upload is not None:
            body = call.upload()
            headers["Content-Type"] = body.content_type
            secrets |= body.secrets
        elif call.json_body is not None:
            body = json.dumps(call.json_body).encode()
            headers["Content-Type"] = "application/json"
            secrets |= api.secret_values(call.json_body)
        cfg = self.config
        return Request(
            call.method,
            call.url,
            headers,
            body,
            cfg.timeout,
            cfg.connect_timeout,
            self.max_response_bytes,
            secrets=frozenset(secrets) | self._connection_secrets,
        )

    def _send(self, request: Request) -> Flow[Reply]:
        """
        Send a request; a transport error (whose text may quote the odd bytes a server answered) quotes
        none of the request's secrets.
        """
        try:
            reply: Reply = yield Send(request)
        except SestekError as exc:
            error = exc
        else:
            return reply
        # Raised outside the handler, so the unredacted error is not kept as the new one's __context__.
        raise self._without_secrets(error, request)

    def _without_secrets(self, exc: SestekError, request: Request) -> SestekError:
        return api.without_secrets(exc, request.secrets | self._connection_secrets)

    def outcome(
        self,
        request: Request,
        reply: Reply,
        parse: Callable[[int, bytes, frozenset[str]], T],
        *,
        inference: bool = False,
    ) -> T:
        """
        The result of an answer, or the error it means. Whatever kind of error it is, it quotes none of the
        secrets the request carried (:attr:`Request.secrets`) nor the connection's, should the server echo
        them: the builders get those secrets and redact the whole answer before they cut it to a message's
        length (redacting the cut text would miss a secret straddling the cut), and the error is redacted
        once more as a whole.

        :param request: the request answered.
        :param reply: the answer.
        :param parse: turns a 2xx into the result.
        :param inference: the call was an inference call (404/503 mean "not published").
        """
        method, url, status = request.method, request.url, reply.status
        try:
            if reply.too_large:
                error: SestekError = api.too_large_error(method, url, status, self.max_response_bytes)
            elif 300 <= status < 400:
                error = api.redirect_error(method, url, status, reply.headers.get("Location"))
            elif 200 <= status < 300:
                return parse(status, reply.body, request.secrets)
            else:
                error = api.error_from_response(
                    method, url, status, reply.headers, reply.body, inference=inference, secrets=request.secrets
                )
        except SestekError as exc:
            error = exc
        # Raised outside the handler, so the unredacted error is not kept as the new one's __context__.
        raise self._without_secrets(error, request)


def _not_past(stop_at: float | None, url: str) -> None:
    """
    No request starts after a wait's deadline: a poll begun just before it then ends within one request
    deadline, however many requests it would have needed (a token, a refresh after a 401).
    """
    if stop_at is not None and time.time() >= stop_at:
        raise SestekTransportError(f"Not sent to {url}: the wait's deadline has passed", maybe_sent=False)
