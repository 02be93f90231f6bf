"""
Progress of a large training upload, in the task log: the total first, then bytes, percent and throughput
at intervals (by the clock, never per block), then a closing line with the duration and the mean rate.

The body (:class:`~airflow_provider_sestek.hooks.upload.MultipartBody`) calls :meth:`UploadProgress.add` once per
block it hands to the socket: one clock read and one comparison, so the upload is not slowed down.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

MIB = 1024 * 1024
#: Uploads of at least this many bytes log their progress (smaller ones take seconds).
PROGRESS_MIN_BYTES = 64 * MIB
#: Seconds between two progress lines of an upload.
PROGRESS_INTERVAL = 30.0

#: Under the hook's own logger (``airflow.task.hooks``), so the lines go where the hook's do: the task log.
log = logging.getLogger(f"airflow.task.hooks.{__name__}")


def _mib(count: float) -> str:
    return f"{count / MIB:,.1f} MiB"


def _took(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _rate(count: float, seconds: float) -> str:
    return f"{count / MIB / seconds:,.1f} MiB/s" if seconds > 0 else "- MiB/s"


class UploadProgress:
    """
    The progress lines of one upload attempt (a retried upload starts a new one).

    :param total: bytes of the whole body.
    :param files: data files in it.
    :param interval: seconds between two progress lines.
    :param clock: monotonic clock (injected by tests).
    :param logger: where the lines go.
    """

    def __init__(
        self,
        total: int,
        files: int,
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.total = total
        self.files = files
        self.interval = interval
        self.sent = 0
        self._clock = clock
        self._log = logger or log
        self.started: float | None = None
        #: When the next line is due: at once (the total), then every ``interval``; never once the body is sent.
        self._due = -math.inf
        self._last_at = 0.0
        self._last_sent = 0

    def add(self, count: int) -> None:
        """
        ``count`` more bytes were handed to the socket: one clock read and one comparison, a line when due.

        :param count: bytes of the block.
        """
        self.sent += count
        now = self._clock()
        if now >= self._due:
            self._line(now)

    def _line(self, now: float) -> None:
        if self.started is None:
            # The bytes of this first block leave from now on: the first rate counts them.
            self.started, self._last_at, self._last_sent = now, now, 0
            self._log.info("Uploading %s of training data (%d file(s))", _mib(self.total), self.files)
        else:
            sent, percent = self.sent, self.sent * 100 // max(self.total, 1)
            rate = _rate(sent - self._last_sent, now - self._last_at)
            self._log.info("Uploaded %s of %s (%d%%), %s", _mib(sent), _mib(self.total), percent, rate)
            self._last_at, self._last_sent = now, sent
        self._due = now + self.interval

    def finish(self, count: int) -> None:
        """
        The last ``count`` bytes were handed to the socket: the closing line (once).

        :param count: bytes of the last block.
        """
        self.sent += count
        if self._due == math.inf:
            return
        now = self._clock()
        if self.started is None:  # the whole body in one block
            self._line(now)
        took = now - (self.started if self.started is not None else now)
        self._due = math.inf
        self._log.info(
            "Sent %s of training data in %s (%s); waiting for the server's answer",
            _mib(self.sent),
            _took(took),
            _rate(self.sent, took),
        )
