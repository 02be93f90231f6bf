"""
Driving a call flow (:mod:`.flow`): what both transports share to carry out its steps. :class:`FlowRun` steps
the generator, records what each step produced and releases the token locks it held; :class:`BodyBuffer`
reads an answer's body up to the flow's limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from airflow_provider_sestek.exceptions import SestekError, SestekTransportError
from airflow_provider_sestek.hooks.flow import Flow, Lock, Mask, Reply, Send, Sleep, Unlock
from airflow_provider_sestek.hooks.tokens import TokenKey

T = TypeVar("T")


class BodyBuffer:
    """
    An answer's body as it arrives, up to a limit: what both transports read into.

    :param limit: most bytes kept.
    :param content_length: the announced length, if any (an announced excess is refused unread).
    """

    def __init__(self, limit: int, content_length: int | None) -> None:
        self.limit = limit
        self.data = bytearray()
        self.too_large = content_length is not None and content_length > limit

    def add(self, chunk: bytes) -> bool:
        """
        Keep a chunk; ``False`` once the limit is passed (stop reading).

        :param chunk: the next bytes.
        """
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[self.limit :]
            self.too_large = True
        return not self.too_large

    def reply(self, status: int, headers: Mapping[str, str]) -> Reply:
        """
        The :class:`Reply` for what was read.

        :param status: HTTP status.
        :param headers: response headers.
        """
        return Reply(status, headers, bytes(self.data), self.too_large)


class FlowRun(Generic[T]):
    """
    Steps a flow for a transport, which carries out what :meth:`next_step` returns and records the value
    (``run.value = ...``) inside :meth:`capture`. Token locks the transport took (:meth:`hold`) are released
    here, on the flow's :class:`Unlock` or when the run ends however it ends (an error, a cancellation).

    :param flow: the flow.
    """

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._started = False
        self._error: SestekError | None = None
        self._held: dict[TokenKey, Releasable] = {}
        self.value: Any = None
        self.result: T
        self._capture = _Capture(self)

    def __enter__(self) -> FlowRun[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for lock in self._held.values():
            lock.release()
        self._held.clear()
        self._flow.close()

    def next_step(self) -> Send | Sleep | Lock | Mask | None:
        """The next step for the transport, or ``None`` once the flow has returned (see :attr:`result`)."""
        while True:
            value, error = self.value, self._error
            self.value, self._error = None, None
            try:
                if not self._started:
                    self._started = True
                    step = next(self._flow)
                elif error is not None:
                    step = self._flow.throw(error)
                else:
                    step = self._flow.send(value)
            except StopIteration as done:
                self.result = done.value
                return None
            if not isinstance(step, Unlock):
                return step
            lock = self._held.pop(step.key, None)
            if lock is not None:
                lock.release()

    def capture(self) -> _Capture:
        """Around carrying out a step: a :class:`SestekError` is handed to the flow, not raised."""
        return self._capture

    def hold(self, step: Lock, lock: Releasable, acquired: bool = True) -> None:
        """
        Record a token lock the transport took for a :class:`Lock` step, or report that it timed out.

        :param step: the step.
        :param lock: the lock (a thread or an asyncio lock).
        :param acquired: whether it was taken within the step's timeout.
        """
        if not acquired:
            raise SestekTransportError(
                f"Waited {step.timeout:g}s for another token request of this client to finish", maybe_sent=False
            )
        self._held[step.key] = lock


class _Capture:
    """:meth:`FlowRun.capture`, as a plain class: it wraps every step of every poll."""

    __slots__ = ("_run",)

    def __init__(self, run: FlowRun[Any]) -> None:
        self._run = run

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, SestekError):
            self._run._error = exc
            return True
        return False


class Releasable(Protocol):
    """A lock as :class:`FlowRun` releases it."""

    def release(self) -> None: ...
