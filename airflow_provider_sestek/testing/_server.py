"""
The emulator's listeners: the API (with the admin routes) and, on first use, the foreign listener,
served from one :class:`~._runner.ServerThread`.

Importing this module imports aiohttp: the facade imports it only in :meth:`SestekEmulator.start`, so
the pytest plugin's import stays light.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from ._api import build_app
from ._foreign import ForeignListener
from ._runner import ServerThread
from ._state import EmulatorState

__all__ = ["Server", "base_url"]


def base_url(host: str, port: int, https: bool) -> str:
    """
    The URL clients reach a listener on.

    :param host: the interface it is bound to (a wildcard becomes the loopback address).
    :param port: the bound port.
    :param https: whether it serves TLS.
    """
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{port}"


class Server:
    """
    Serves ``state`` on ``host:port`` (call :meth:`start`, then :meth:`stop`).

    :param state: what the routes serve.
    :param host: the interface.
    :param port: the port (0 picks one).
    :param ssl_context: serve HTTPS with it.
    """

    def __init__(self, state: EmulatorState, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self._state = state
        self._host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._thread = ServerThread("sestek-emulator")
        self._runner: web.AppRunner | None = None
        self._foreign = ForeignListener(state)
        self.port = 0

    def start(self) -> None:
        """Bind and serve; raises what binding raised (the thread is stopped again then)."""
        self._thread.start()
        try:
            app = build_app(self._state, self)
            runner, _, port = self._thread.call(
                lambda: self._thread.serve(app, self._host, self._requested_port, self._ssl_context)
            )
        except BaseException:
            self._thread.stop()
            raise
        self._runner, self.port = runner, port

    def stop(self) -> None:
        """Close every listener and connection and end the thread."""
        self._thread.stop()
        self._runner = None
        self._foreign.stopped()

    @property
    def url(self) -> str:
        """The API's base URL."""
        return base_url(self._host, self.port, self._ssl_context is not None)

    @property
    def open_connections(self) -> int:
        """TCP connections the API holds open right now."""
        return 0 if self._runner is None else ServerThread.open_connections(self._runner)

    def started_foreign_url(self) -> str | None:
        """The foreign listener's base URL if it runs, else ``None``."""
        address = self._foreign.address
        return None if address is None else base_url(*address, self._ssl_context is not None)

    async def foreign_base(self) -> str:
        """The foreign listener's base URL, starting it first if needed; runs on the server's loop."""
        host, port = await self._foreign.start(self._thread, self._host, self._ssl_context)
        return base_url(host, port, self._ssl_context is not None)

    def foreign_url(self) -> str:
        """The foreign listener's base URL, starting it first if needed; from any thread but the loop's."""
        started = self.started_foreign_url()
        if started is not None:
            return started
        if self._thread.in_loop():
            # Starting it means waiting on the loop this code runs on: await foreign_base() there instead.
            raise RuntimeError("foreign_url cannot start the foreign listener from the emulator's own loop")
        return self._thread.call(self.foreign_base)
