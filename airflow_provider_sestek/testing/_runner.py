"""
The server underneath the emulator: aiohttp.web applications served from one event loop that runs on
a daemon thread of its own, so the emulator can be started and stopped from synchronous code.

Importing this module imports aiohttp; the emulator imports it only in :meth:`SestekEmulator.start`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from ._http import NoRequestBytes

__all__ = ["ServerThread"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


#: What aiohttp's request handlers log to instead of ``aiohttp.server``.
_SERVER_LOG = logging.getLogger("airflow_provider_sestek.testing.server")
_SERVER_LOG.addFilter(NoRequestBytes())

# Idle keep-alive connections are reaped, so thousands of one-shot clients cannot pile up.
_KEEPALIVE_TIMEOUT = 120.0
# How long stop() lets handlers still running finish before they are cancelled and their connections closed.
_SHUTDOWN_TIMEOUT = 0.5
# Bigger reads than aiohttp's default move a large upload with fewer loop iterations.
_READ_BUFSIZE = 1 << 20


class ServerThread:
    """
    An event loop on a daemon thread, serving any number of aiohttp applications.

    :param name: the thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (after :meth:`start`)."""
        if self._loop is None:
            raise RuntimeError("the server thread is not running")
        return self._loop

    def in_loop(self) -> bool:
        """Whether the caller runs on the loop's thread (where blocking on the loop would deadlock)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the loop and its thread; returns once the loop runs."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()

    def call(self, factory: Callable[[], Awaitable[_T]], timeout: float | None = 30.0) -> _T:
        """
        Run a coroutine on the loop and wait for its result (from any thread but the loop's).

        :param factory: makes the coroutine.
        :param timeout: seconds to wait.
        """

        async def wrapper() -> _T:
            return await factory()

        future: Future[_T] = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(timeout)

    async def serve(
        self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> tuple[web.AppRunner, str, int]:
        """
        Serve ``app`` on ``host:port`` (port 0 picks a free one); runs on the loop.

        :param app: the application.
        :param host: the interface.
        :param port: the port.
        :param ssl_context: serve HTTPS with it when given.
        :return: the runner (for :meth:`open_connections`) and the bound host and port.
        """
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            keepalive_timeout=_KEEPALIVE_TIMEOUT,
            read_bufsize=_READ_BUFSIZE,
            logger=_SERVER_LOG,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runners.append(runner)
        address: Any = runner.addresses[0]
        return runner, str(address[0]), int(address[1])

    @staticmethod
    def open_connections(runner: web.AppRunner) -> int:
        """
        Connections ``runner`` holds open right now.

        :param runner: a runner from :meth:`serve`.
        """
        server = runner.server
        if server is None:
            return 0
        for _ in range(10):
            try:
                # aiohttp lists a connection until its handler ends, even after the peer closed it (the
                # handler's transport is gone then): a client that gave up has closed what it opened.
                return sum(1 for handler in server.connections if handler.transport is not None)
            except RuntimeError:  # the loop changed the set while this thread copied it; look again
                continue
        return 0

    def stop(self) -> None:
        """Close every listener and connection, then end the loop and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        runners, self._runners = self._runners, []

        async def cleanup() -> None:
            for runner in reversed(runners):
                try:
                    await runner.cleanup()
                except Exception:  # a listener that fails to close must not keep the others open
                    _log.debug("closing an emulator listener failed", exc_info=True)

        try:
            asyncio.run_coroutine_threadsafe(cleanup(), loop).result(_SHUTDOWN_TIMEOUT + 10)
        except Exception:
            _log.debug("emulator shutdown did not finish cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = self._thread = None
