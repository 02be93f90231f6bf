"""
An evaluation's JSON report, written to a local path or to object storage (``ObjectStoragePath``).

The cases are written one by one to a temporary file while the evaluation runs (memory does not grow with
them), then the file is moved into place (local) or copied up in one stream (object storage): a reader
never sees half a report, and a failed evaluation still leaves its report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import IO, Any

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekError, SestekValidationError
from airflow_provider_sestek.hooks.retry import describe_exception
from airflow_provider_sestek.hooks.upload import _file_url_path

_FIELD = "report_path"


class ReportWriter:
    """
    The report of one evaluation. :func:`check_report_path` first, then :meth:`open`, :meth:`write` per case
    and :meth:`finish`.

    :param location: a local path or an object-storage URL, as checked.
    :param remote: whether it is object storage.
    """

    def __init__(self, location: str, remote: bool) -> None:
        self.location = location
        self.remote = remote
        #: The location fit for logs and XCom (no ``user:password@``).
        self.shown = api.redact_url(location)
        self._tmp: IO[str] | None = None
        self._first = True

    def open(self, header: dict[str, Any]) -> None:
        """
        Start the temporary file with the report's header fields.

        :param header: fields written before the cases (``model_id`` ...).
        """
        folder = None if self.remote else os.path.dirname(os.path.abspath(self.location))
        self._tmp = tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=folder, prefix=".sestek-report-", suffix=".json", delete=False
        )
        body = json.dumps(header)[:-1]
        self._tmp.write(f'{body}{", " if header else ""}"cases": [')

    def write(self, case: dict[str, Any]) -> None:
        """Add one case."""
        assert self._tmp is not None
        self._tmp.write(("\n" if self._first else ",\n") + json.dumps(case))
        self._first = False

    def finish(self, summary: dict[str, Any]) -> str:
        """
        End the report with the summary and put it in place; returns the location shown.

        :param summary: the evaluation's summary.
        :raises SestekError: the report could not be written there.
        """
        assert self._tmp is not None
        self._tmp.write(f'\n], "summary": {json.dumps(summary)}}}\n')
        self._tmp.close()
        tmp = self._tmp.name
        try:
            if self.remote:
                _upload(tmp, self.location)
            else:
                os.replace(tmp, os.path.expanduser(self.location))
        except Exception as exc:
            # After the evaluation: not a bad argument (those are refused before it), an error of the store.
            raise SestekError(f"The report {self.shown!r} could not be written: {describe_exception(exc)}") from None
        finally:
            self.discard()
        return self.shown

    def discard(self) -> None:
        """Remove the temporary file (a report not finished)."""
        if self._tmp is not None:
            self._tmp.close()
            try:
                os.unlink(self._tmp.name)
            except FileNotFoundError:
                pass


def _upload(tmp: str, location: str) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    with open(tmp, "rb") as source, ObjectStoragePath(location).open("wb") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)


def check_report_path(value: Any) -> ReportWriter | None:
    """
    Check ``report_path`` before any request: a writable local folder, or an object-storage URL whose
    filesystem is installed and whose bucket (container) exists, with one metadata request.

    :param value: the argument: ``None``, a path, a URL or an ``ObjectStoragePath``.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes) and hasattr(value, "protocol"):
        value = str(value)  # an ObjectStoragePath keeps its conn_id@ in str()
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise SestekValidationError(_FIELD, None, "must be a file path or an object-storage URL")
    location = value.strip()
    shown = api.redact_url(location)
    scheme = location.partition("://")[0].lower() if "://" in location else None
    if scheme in ("http", "https"):
        raise SestekValidationError(_FIELD, shown, "is a web URL; give a local path or an object-storage URL")
    if scheme == "file":  # a file of this machine, as for data_files: the host empty or localhost
        location = _file_url_path(_FIELD, location)
        scheme = None
    if scheme is None:
        path = os.path.abspath(os.path.expanduser(location))
        if os.path.isdir(path):
            raise SestekValidationError(_FIELD, path, "is a folder; give the report's file name")
        folder = os.path.dirname(path)
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise SestekValidationError(_FIELD, path, f"its folder {folder!r} does not exist or is not writable")
        return ReportWriter(path, remote=False)
    from airflow_provider_sestek.hooks.object_storage import filesystem_error, object_path

    location = scheme + location[len(scheme) :]
    path = object_path(_FIELD, location, shown, scheme)
    try:
        fs = path.fs  # Airflow 2.11 looks the filesystem up only here, on first use
    except (ImportError, ValueError) as exc:
        raise filesystem_error(_FIELD, shown, scheme, exc, "is not a valid URL") from None
    _check_bucket(fs, path, shown)
    return ReportWriter(location, remote=True)


def _check_bucket(fs: Any, path: Any, shown: str) -> None:
    """The bucket (container) of an object-storage report exists: found now, not after the evaluation."""
    from airflow_provider_sestek.hooks.object_storage import within_timeout

    bucket = str(path.path).lstrip("/").split("/", 1)[0]
    if not bucket:
        return
    try:
        found = within_timeout(fs, "exists", bucket)
    except Exception as exc:  # network, credentials: whatever the filesystem package raises
        raise SestekValidationError(_FIELD, shown, f"its bucket cannot be checked: {describe_exception(exc)}") from None
    if not found:
        raise SestekValidationError(_FIELD, shown, f"its bucket {bucket!r} does not exist (or is not reachable)")
