"""
The sync transport: carries out the steps of a call flow (:mod:`.flow`) over a requests ``Session``.

It decides nothing about the API; it moves bytes and enforces the request's limits. requests' read
timeout bounds the wait between two bytes only, so a server that drips its answer would hold a worker
for ever: a watchdog shuts the socket down when the request's total deadline passes.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_sestek.exceptions import SestekError, SestekTransportError
from airflow_provider_sestek.hooks.flow import Flow, Lock, Mask, Reply, Request, Send, Sleep
from airflow_provider_sestek.hooks.flow_run import BodyBuffer, FlowRun
from airflow_provider_sestek.hooks.retry import describe_exception
from airflow_provider_sestek.hooks.tokens import TOKEN_CACHE, mask

if TYPE_CHECKING:
    import requests

T = TypeVar("T")

# The library texts ("Connection broken: IncompleteRead(...)", "<ContentLengthError: 400 ...>") mislead.
CUT_OFF = "The answer from {url} was cut off: the connection closed before the whole body arrived"
DEADLINE = "No complete answer from {url} within {seconds:g}s (the request deadline: connection extra 'timeout')"

_current = threading.local()


class _Deadline:
    """
    The total deadline of one request, enforced by shutting its socket down.

    :param seconds: the deadline.
    :param from_answer: count from when the answer is awaited (an upload's body may take minutes to send).
    """

    def __init__(self, seconds: float, from_answer: bool) -> None:
        self.seconds = seconds
        self.at = None if from_answer else time.monotonic() + seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        return self.seconds if self.at is None else max(self.at - time.monotonic(), 0.001)

    def arm(self, sock: socket.socket) -> None:
        """Start watching the socket the answer will be read from (once the request is sent)."""
        if self.at is None:
            self.at = time.monotonic() + self.seconds
        self.disarm()
        self._timer = threading.Timer(self.remaining(), self._fire, args=(sock,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, sock: socket.socket) -> None:
        self.fired = True
        try:
            # The plain socket call: on a TLS socket, SSLSocket.shutdown would also tear down the TLS
            # object under the reader's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _FinalResponse(http.client.HTTPResponse):
    """
    An answer that skips interim ones (``102 Processing``, ``103 Early Hints``) as HTTP requires;
    http.client skips only ``100 Continue`` and would take the others for the final answer.
    """

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 102 <= status < 200:
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]


def _deadline_connection(base: type[Any]) -> type[Any]:
    class DeadlineConnection(base):  # type: ignore[misc, valid-type]
        """A urllib3 connection that arms the current request's deadline when it awaits the answer."""

        response_class = _FinalResponse

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            deadline: _Deadline | None = getattr(_current, "deadline", None)
            if deadline is not None and self.sock is not None:
                deadline.arm(self.sock)
            return super().getresponse(*args, **kwargs)

    return DeadlineConnection


def _pool_classes() -> dict[str, type[Any]]:
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = _deadline_connection(HTTPConnection)

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _deadline_connection(HTTPSConnection)

    return {"http": HTTPPool, "https": HTTPSPool}


def _session(user_agent: str) -> requests.Session:
    import requests.adapters

    pools = _pool_classes()

    class DeadlineAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    class NoRedirectSession(requests.Session):
        def get_redirect_target(self, resp: requests.Response) -> None:
            # Redirects are reported by the flow, never followed; without this, requests still parses
            # Location (raising raw errors on odd ones) to prepare a next request it will not send.
            return None

    session = NoRedirectSession()
    session.headers["User-Agent"] = user_agent
    for prefix in ("http://", "https://"):
        session.mount(prefix, DeadlineAdapter())
    return session


class SyncTransport:
    """
    Runs call flows in the calling thread.

    :param user_agent: the ``User-Agent`` header.
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    """

    def __init__(self, user_agent: str, verify: bool | str = True) -> None:
        self.user_agent = user_agent
        self.verify = verify

    @cached_property
    def session(self) -> requests.Session:
        """The pooled requests session (proxies from the environment are honoured)."""
        return _session(self.user_agent)

    def run(self, flow: Flow[T]) -> T:
        """
        Carry out a flow's steps until it returns.

        :param flow: the flow.
        """
        with FlowRun(flow) as run:
            while (step := run.next_step()) is not None:
                with run.capture():
                    run.value = self._do(step, run)
            return run.result

    def _do(self, step: Send | Sleep | Lock | Mask, run: FlowRun[Any]) -> Any:
        if isinstance(step, Send):
            return self.send(step.request)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
        elif isinstance(step, Lock):
            lock = TOKEN_CACHE.fetch_lock(step.key)
            run.hold(step, lock, lock.acquire(timeout=step.timeout))
        else:
            mask(step.secret)
        return None

    def send(self, request: Request) -> Reply:
        """
        Send one request and read its answer within the request's limits.

        :param request: the request.
        """
        import requests

        url = request.url
        deadline = _Deadline(request.timeout, from_answer=request.is_upload)
        _current.deadline = deadline
        try:
            response = self.session.request(
                request.method,
                url,
                data=request.body,
                headers=dict(request.headers),
                timeout=(min(request.connect_timeout, deadline.remaining()), deadline.remaining()),
                verify=self.verify,
                allow_redirects=False,
                stream=True,
            )
            with response:
                length = response.headers.get("Content-Length", "").strip()
                body = BodyBuffer(request.limit, int(length) if length.isdigit() else None)
                if not body.too_large:
                    for chunk in response.iter_content(64 * 1024):
                        if not body.add(chunk):
                            break
            if deadline.fired:
                # An answer without Content-Length ends when the connection does: the watchdog's shutdown
                # looks like a complete body.
                raise SestekTransportError(DEADLINE.format(url=url, seconds=request.timeout))
            return body.reply(response.status_code, response.headers)
        except SestekError:
            raise
        except requests.exceptions.SSLError as exc:
            raise SestekTransportError(
                f"TLS error talking to {url}: {describe_exception(exc, request.secrets)}. Set the connection extra "
                "'verify' to the CA bundle path of the server (or false to skip verification, not recommended)",
                maybe_sent=False,
            ) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise SestekTransportError(
                f"Timed out connecting to {url}: {describe_exception(exc, request.secrets)}", maybe_sent=False
            ) from None
        except Exception as exc:
            if deadline.fired or isinstance(exc, requests.exceptions.ReadTimeout):
                raise SestekTransportError(DEADLINE.format(url=url, seconds=request.timeout)) from None
            if isinstance(exc, requests.exceptions.ConnectionError):
                raise SestekTransportError(
                    f"Connection to {url} failed: {describe_exception(exc, request.secrets)}",
                    maybe_sent=not _refused(exc),
                ) from None
            if isinstance(exc, requests.exceptions.ChunkedEncodingError):
                raise SestekTransportError(CUT_OFF.format(url=url)) from None
            if isinstance(exc, requests.exceptions.RequestException | OSError):
                raise SestekTransportError(
                    f"Request to {url} failed: {describe_exception(exc, request.secrets)}"
                ) from None
            raise
        finally:
            _current.deadline = None
            deadline.disarm()
            close = getattr(request.body, "close", None)
            if close is not None:
                close()


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
