"""
The async transport: carries out the steps of a call flow (:mod:`.flow`) over aiohttp, in the event loop.

Every trigger of a triggerer shares one loop, so this side is built for thousands of waits at once: one
pooled ``aiohttp.ClientSession`` per loop and TLS setting, a bound on requests in flight, and per-loop
token locks. aiohttp rather than httpx: a progress poll costs about a fifth of the CPU, and httpcore's
pool rescans every pooled connection on every request (see BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_sestek.exceptions import SestekTransportError
from airflow_provider_sestek.hooks.flow import Flow, Lock, Mask, Reply, Request, Send, Sleep
from airflow_provider_sestek.hooks.flow_run import BodyBuffer, FlowRun
from airflow_provider_sestek.hooks.retry import describe_exception
from airflow_provider_sestek.hooks.tokens import TokenKey, amask
from airflow_provider_sestek.hooks.transport_sync import CUT_OFF, DEADLINE

if TYPE_CHECKING:
    import ssl

    import aiohttp

T = TypeVar("T")

#: Seconds an idle pooled connection of the async transport stays open.
ASYNC_KEEPALIVE = 5.0


@dataclass(eq=False)
class LoopPool:
    """
    The async transport's state for one event loop. Only that loop's thread touches it, so it needs no lock.

    :param users: leases held: requests in flight and triggers waiting.
    :param sessions: one pooled session per TLS setting.
    :param slots: the requests in flight, at most the pool limit.
    :param token_locks: single-flight locks of token fetches. They live here, not in a process-wide map
        keyed by loop: a contended asyncio lock references its loop, which would then never be freed.
    """

    users: int = 0
    sessions: dict[bool | str, aiohttp.ClientSession] = field(default_factory=dict)
    slots: asyncio.Semaphore | None = None
    token_locks: dict[TokenKey, asyncio.Lock] = field(default_factory=dict)

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


class AsyncClients:
    """One :class:`LoopPool` per event loop, alive while anything on that loop holds a lease."""

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPool] = weakref.WeakKeyDictionary()
        self._proxies: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def lease(self) -> _Lease:
        """
        This loop's pool, kept open while the ``async with`` block runs; the last lease to end closes its
        sessions.

        Every flow holds a lease, and so does a trigger for its whole wait: thousands of triggers share
        warm connections, while a loop with nothing in flight holds no session. An open session outliving
        its loop (``asyncio.run``, ``dag.test()``) cannot be closed any more and aiohttp reports it as
        unclosed at exit.
        """
        return _Lease(self)

    def _acquire(self) -> LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(loop, LoopPool())
        pool.users += 1
        return pool

    async def _release(self, pool: LoopPool) -> None:
        pool.users -= 1
        if pool.users == 0:
            # Sessions, the semaphore and the locks hold their loop strongly, which would pin the weak key.
            with self._lock:
                del self._pools[asyncio.get_running_loop()]
            for client in pool.sessions.values():
                await client.close()

    def pools(self) -> int:
        """Event loops that have a pool now (for tests: finished loops must not be kept)."""
        return len(self._pools)

    def proxy_for(self, url: str) -> str | None:
        """
        The proxy of the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) for a URL.

        :param url: the request URL.
        """
        # The origin without urlsplit: this runs on every poll of every trigger.
        end = url.find("/", url.find("//") + 2)
        origin = url if end == -1 else url[:end]
        if origin in self._proxies:
            return self._proxies[origin]
        import urllib.parse

        from requests.utils import get_environ_proxies

        # requests' reading of the environment, so both transports agree (NO_PROXY with CIDR ranges too).
        proxies = get_environ_proxies(url)
        proxy = proxies.get(urllib.parse.urlsplit(url).scheme) or proxies.get("all")
        self._proxies[origin] = proxy
        return proxy


class _Lease:
    """``async with`` a loop's pool; a plain class, since every poll of every trigger takes one."""

    __slots__ = ("_clients", "_pool")

    def __init__(self, clients: AsyncClients) -> None:
        self._clients = clients

    async def __aenter__(self) -> LoopPool:
        self._pool = self._clients._acquire()
        return self._pool

    async def __aexit__(self, *exc_info: object) -> None:
        await self._clients._release(self._pool)


ASYNC_CLIENTS = AsyncClients()


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


class AsyncTransport:
    """
    Runs call flows in the running event loop.

    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param max_connections: bound on the requests in flight on one loop (shared by all its triggers).
    """

    def __init__(self, verify: bool | str = True, max_connections: int = 100) -> None:
        self.verify = verify
        self.max_connections = max_connections

    async def run(self, flow: Flow[T]) -> T:
        """
        Carry out a flow's steps until it returns.

        :param flow: the flow.
        """
        async with ASYNC_CLIENTS.lease() as pool:
            with FlowRun(flow) as run:
                while (step := run.next_step()) is not None:
                    with run.capture():
                        run.value = await self._do(step, run, pool)
                return run.result

    async def _do(self, step: Send | Sleep | Lock | Mask, run: FlowRun[Any], pool: LoopPool) -> Any:
        if isinstance(step, Send):
            return await self.send(step.request, pool)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Lock):
            lock = pool.token_locks.setdefault(step.key, asyncio.Lock())
            try:
                async with asyncio.timeout(step.timeout):
                    await lock.acquire()
            except TimeoutError:
                run.hold(step, lock, acquired=False)
            run.hold(step, lock)
        else:
            await amask(step.secret)
        return None

    async def send(self, request: Request, pool: LoopPool) -> Reply:
        """
        Send one request and read its answer, all of it within the request's total deadline.

        :param request: the request (streamed uploads are the sync transport's: the worker sends them).
        :param pool: this loop's pool.
        """
        import aiohttp

        if request.is_upload:
            raise TypeError("the async transport sends no streamed uploads")
        import ssl

        url = request.url
        slots = pool.limit(self.max_connections)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # Inside the mapping: building the TLS context loads the CA file, which can fail too.
            client = pool.session(self.verify, self.max_connections)
            if slots.locked():
                # Thousands of polls at once (a triggerer restart): the wait for a slot counts too.
                async with asyncio.timeout(request.timeout):
                    await slots.acquire()
            else:
                await slots.acquire()
            try:
                # aiohttp's total timeout covers connecting, sending and reading the whole body: one
                # deadline, whatever the server drips (its sock_read would only bound gaps between bytes).
                remaining = max(request.timeout - (loop.time() - started), 0.001)
                timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=request.connect_timeout)
                async with client.request(
                    request.method,
                    url,
                    data=request.body,
                    headers=request.headers,
                    timeout=timeout,
                    allow_redirects=False,
                    proxy=ASYNC_CLIENTS.proxy_for(url),
                ) as response:
                    length = response.content_length
                    body = BodyBuffer(request.limit, length)
                    if length is not None and not body.too_large:
                        body.add(await response.read())  # a short answer in one go
                    elif not body.too_large:
                        async for chunk in response.content.iter_chunked(64 * 1024):
                            if not body.add(chunk):
                                break
                    return body.reply(response.status, response.headers)
            finally:
                slots.release()
        except SestekTransportError:
            raise
        except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError, ssl.SSLError) as exc:
            raise SestekTransportError(
                f"TLS error talking to {url}: {describe_exception(exc, request.secrets)}. Set the connection extra "
                "'verify' to the CA bundle path of the server",
                maybe_sent=False,
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise SestekTransportError(
                f"Connection to {url} failed: {describe_exception(exc, request.secrets)}", maybe_sent=False
            ) from None
        except TimeoutError:
            raise SestekTransportError(DEADLINE.format(url=url, seconds=request.timeout)) from None
        except aiohttp.ClientPayloadError:
            raise SestekTransportError(CUT_OFF.format(url=url)) from None
        except Exception as exc:
            # aiohttp's other errors, a ValueError for a header value it cannot send (the flow never builds
            # one), an OSError of the socket: never a raw exception, like the sync transport.
            raise SestekTransportError(f"Request to {url} failed: {describe_exception(exc, request.secrets)}") from None
