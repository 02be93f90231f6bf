"""
Training data on the way out: validating data files, and the streamed ``multipart/form-data`` body.

Files are checked (and sized) before any request, and opened one at a time when the body reaches them,
then closed: a corpus of thousands of files uploads under any descriptor limit, and memory stays flat
whatever the file sizes.
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
import stat
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekDataFileError, SestekValidationError
from airflow_provider_sestek.hooks import upload_progress
from airflow_provider_sestek.hooks.retry import describe_exception

#: Bytes read from a data file per block of a training upload (the HTTP client asks for 16 KiB).
UPLOAD_BLOCK_SIZE = 512 * 1024

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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
    data_files: tuple[DataFile, ...]
    data_urls: tuple[str, ...]
    callback: api.CallbackConfig | None = None


class Source(Protocol):
    """Where the bytes of one file part come from."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    def open(self) -> IO[bytes]: ...


@dataclass(frozen=True)
class DataFile:
    """
    A validated training file: a local path or an object-storage URL, opened only when its part is sent.

    :param name: the file name sent in the part.
    :param location: the local path or the URL.
    :param content_type: the part's content type.
    :param remote: an object-storage URL (read through ``ObjectStoragePath``).
    :param size: bytes, as checked before the request; the upload sends exactly this many.
    """

    name: str
    location: str
    content_type: str
    remote: bool
    size: int

    def open(self) -> IO[bytes]:
        """The file, open for reading (the caller closes it)."""
        if self.remote:
            from airflow_provider_sestek.hooks.object_storage import open_object

            return open_object(self.location)
        # Non-blocking open: a FIFO put in the file's place would block open() until a writer comes.
        fd = os.open(self.location, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SestekDataFileError(self.name, "is no longer a regular file (it was replaced during the upload)")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class _OpenFile:
    """An already open file as a part's source (sent from its current position to its end)."""

    name: str
    handle: IO[bytes]
    size: int

    def open(self) -> IO[bytes]:
        return _Unclosed(self.handle)  # type: ignore[return-value]


class _Unclosed(io.BufferedIOBase):
    """A view of a caller's file that the body must not close."""

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__()
        self._handle = handle

    def read(self, size: int | None = -1) -> bytes:
        return self._handle.read(-1 if size is None else size)


def check_data_file(entry: Any, index: int, field_name: str | None = None) -> DataFile:
    """
    Validate one entry of ``data_files`` and record its size (no Sestek request is made).

    :param entry: a local path (``str``, ``os.PathLike``, ``~`` expanded, ``file://`` URL) or an
        object-storage URL or ``ObjectStoragePath`` (``s3://``, ``gs://`` ...).
    :param index: its position, for the field name in errors.
    :param field_name: the field named in errors instead (another argument read the same way: ``cases``).
    """
    field_name = field_name or f"data_files[{index}]"
    if not isinstance(entry, str | bytes) and hasattr(entry, "protocol"):
        # An ObjectStoragePath: its str() is the URL with its connection id (conn_id@), which os.fspath() is
        # not bound to keep (it is os.PathLike on Airflow 2.11).
        entry = str(entry)
    elif isinstance(entry, os.PathLike):
        entry = os.fspath(entry)
    if isinstance(entry, bytes):
        entry = entry.decode("utf-8", "replace")
    if not isinstance(entry, str) or not entry.strip():
        raise SestekValidationError(field_name, entry, "must be a non-empty file path or object-storage URL")
    location = entry.strip()
    shown = api.redact_url(location)
    scheme_match = _URL_SCHEME.match(location)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    if scheme in ("http", "https"):
        raise SestekValidationError(field_name, shown, "is a web URL; pass it in data_urls so Sestek downloads it")
    if scheme is not None and scheme != "file":
        # Schemes are case-insensitive (RFC 3986), but Airflow 2.11 looks its filesystems up by the scheme as
        # written: "S3://" would be "no filesystem" there, with a hint to install s3fs.
        location = scheme + location[len(scheme) :]
        return _check_remote(field_name, location, api.redact_url(location), scheme)
    path = _file_url_path(field_name, location) if scheme == "file" else os.path.expanduser(location)
    name = os.path.basename(path.rstrip("/")) or path
    if not os.path.exists(path):
        raise SestekValidationError(field_name, path, _missing_local_file(path))
    if os.path.isdir(path):
        raise SestekValidationError(field_name, path, "is a directory; list the files in it instead")
    if not os.path.isfile(path):
        raise SestekValidationError(field_name, path, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise SestekValidationError(field_name, path, "is not readable by the worker")
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise SestekValidationError(field_name, path, f"cannot be read: {exc.strerror or exc}") from None
    return DataFile(name, path, _content_type(name), remote=False, size=size)


def _missing_local_file(path: str) -> str:
    """
    The rule a missing local file breaks, naming this worker: on a distributed executor the file may well
    exist, on another worker's disk.
    """
    where = f"on host {_worker_hostname()!r}"
    if not os.path.isabs(path):
        try:
            cwd = os.getcwd()
        except OSError:  # the working directory was deleted under the worker
            where += " (relative to a working directory that no longer exists)"
        else:
            where += f" (relative to the working directory {cwd!r})"
    return (
        f"file does not exist {where}; on a distributed executor (Celery, Kubernetes) every worker has its own "
        "disk: put training data in object storage (s3://, gs://) so any worker can read it"
    )


def _worker_hostname() -> str:
    """The host name Airflow records for the task (``[core] hostname_callable``), else the FQDN."""
    import socket

    try:
        try:
            from airflow.sdk.api.client import get_hostname
        except ImportError:  # Airflow 2
            from airflow.utils.net import get_hostname
        name = get_hostname()
    except Exception:  # a broken hostname_callable must not hide the missing file
        return socket.getfqdn()
    # A callable that names no host (None, "") says nothing: the FQDN does.
    return str(name) if name is not None and str(name).strip() else socket.getfqdn()


def _file_url_path(field_name: str, location: str) -> str:
    """The local path of a ``file://`` URL: host empty or ``localhost``, percent-escapes decoded."""
    try:
        parts = urllib.parse.urlsplit(location)
    except ValueError:
        raise SestekValidationError(field_name, location, "is not a valid file:// URL") from None
    if parts.netloc not in ("", "localhost"):
        raise SestekValidationError(
            field_name,
            api.redact_url(location),
            "a file:// URL names a file of this machine: its host must be empty or localhost",
        )
    return urllib.request.url2pathname(parts.path)


def _check_remote(field_name: str, location: str, shown: str, scheme: str) -> DataFile:
    # Separate module, imported here only: object storage pulls in the filesystem packages.
    from airflow_provider_sestek.hooks.object_storage import check_object

    found = check_object(field_name, location, shown, scheme)
    return DataFile(found.name, location, found.content_type, remote=True, size=found.size)


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class MultipartBody:
    """
    A ``multipart/form-data`` body streamed from files, block by block: memory stays flat whatever the
    file sizes, each file is open only while its part is read, and each block is read from the file once
    and handed to the socket without copies.

    The bytes are those requests_toolbelt's ``MultipartEncoder`` produces (urllib3 renders the part
    headers), which on a large file spends most of its time copying through its buffer: 3-4x slower than
    the network on loopback.

    :param fields: ``(name, value)`` pairs; a value is a string or ``(filename, source, content_type)``
        where the source is a :class:`DataFile` (opened when reached) or a file open in binary mode (sent
        from its current position to its end, and left open).
    :param boundary: the boundary (a random one by default).
    :param progress_min_bytes: a body of at least this many bytes logs its progress (see
        :mod:`~airflow_provider_sestek.hooks.upload_progress`); ``None``: ``PROGRESS_MIN_BYTES`` (64 MiB).
    :param progress_interval: seconds between two progress lines; ``None``: ``PROGRESS_INTERVAL`` (30 s).
    :param clock: the monotonic clock of the progress lines (injected by tests).
    """

    def __init__(
        self,
        fields: Sequence[tuple[str, Any]],
        boundary: str | None = None,
        *,
        progress_min_bytes: int | None = None,
        progress_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import uuid

        from urllib3.fields import RequestField

        self.boundary = boundary or uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        #: The secret values of the fields (the callback client secret): kept out of errors about the answer.
        self.secrets = api.secret_values(fields)
        delimiter = f"--{self.boundary}\r\n".encode()
        #: The body as a list of byte strings and file sources, in order.
        self._segments: list[bytes | Source] = []
        pending = b""
        for name, value in fields:
            if isinstance(value, tuple):
                filename, data, content_type = value
            else:
                filename, data, content_type = None, value, None
            # The part headers as urllib3 renders them, the Content-Disposition parameters by sent_name().
            disposition = "; ".join(
                ["form-data", _header_param("name", name), *([_header_param("filename", filename)] if filename else [])]
            )
            headers = {"Content-Disposition": disposition, "Content-Type": content_type}
            part = RequestField(name=name, data=b"" if filename else data, headers=headers)
            pending += delimiter + part.render_headers().encode("utf-8")
            if isinstance(data, str | bytes):
                pending += (data.encode("utf-8") if isinstance(data, str) else data) + b"\r\n"
            else:
                source = data if isinstance(data, DataFile) else _OpenFile(filename, data, _remaining_bytes(data))
                self._segments += [pending, source]
                pending = b"\r\n"
        self._segments.append(pending + f"--{self.boundary}--\r\n".encode())
        #: Body length in bytes (requests sends it as Content-Length).
        self.len = sum(len(s) if isinstance(s, bytes) else s.size for s in self._segments)
        least = upload_progress.PROGRESS_MIN_BYTES if progress_min_bytes is None else progress_min_bytes
        self._progress = (
            upload_progress.UploadProgress(
                self.len,
                sum(not isinstance(s, bytes) for s in self._segments),
                interval=upload_progress.PROGRESS_INTERVAL if progress_interval is None else progress_interval,
                clock=clock,
            )
            if self.len >= least
            else None
        )
        self._index = 0
        self._offset = 0
        self._handle: IO[bytes] | None = None

    def read(self, size: int | None = -1) -> bytes:
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
                chunk = self._read_file(segment, size)
                left = segment.size - self._offset - len(chunk)
            self._offset += len(chunk)
            if left <= 0:
                if not isinstance(segment, bytes):
                    self._finish_file(segment)
                self._index += 1
                self._offset = 0
            chunks.append(chunk)
            size -= len(chunk)
        block = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._progress is not None:
            if self._index < len(self._segments):
                self._progress.add(len(block))
            else:
                self._progress.finish(len(block))
        return block

    def _read_file(self, source: Source, size: int) -> bytes:
        try:
            if self._handle is None:
                self._handle = source.open()
            chunk = self._handle.read(min(size, source.size - self._offset))
        except SestekDataFileError:
            self.close()
            raise
        except Exception as exc:  # OSError, or an object store's own error mid-read (botocore's, ...)
            self.close()
            reason = (exc.strerror if isinstance(exc, OSError) else None) or describe_exception(exc)
            raise SestekDataFileError(source.name, f"could not be read while uploading: {reason}") from None
        if not chunk and source.size > self._offset:
            self.close()
            raise SestekDataFileError(
                source.name,
                f"ended {source.size - self._offset:,} bytes early while uploading ({source.size:,} bytes when "
                "checked): it changed during the upload",
            )
        return chunk

    def _finish_file(self, source: Source) -> None:
        handle, self._handle = self._handle, None
        if handle is None:  # an empty file: nothing was read, nothing opened
            return
        try:
            grew = bool(handle.read(1))
        finally:
            handle.close()
        if grew:
            raise SestekDataFileError(
                source.name, f"grew while uploading ({source.size:,} bytes when checked): it changed during the upload"
            )

    def close(self) -> None:
        """Close the file being read, if any (after an error, or when the request ends early)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def _remaining_bytes(handle: IO[bytes]) -> int:
    """Bytes from a file's current position to its end (local files and object-storage files alike)."""
    position = handle.tell()
    try:
        return os.fstat(handle.fileno()).st_size - position
    except (OSError, io.UnsupportedOperation, AttributeError):
        end = handle.seek(0, os.SEEK_END)
        handle.seek(position)
        return end - position


def sent_name(value: str) -> str:
    """
    A file name (or any part header value) as the multipart body writes it: ``"``, CR and LF
    percent-encoded, as browsers and curl do (the WHATWG rule urllib3 follows). The body's part headers and
    the check of colliding names both use this one function, so what is compared is what is sent.

    :param value: the name.
    """
    return value.translate(_HEADER_ESCAPES)


_HEADER_ESCAPES = {10: "%0A", 13: "%0D", 34: "%22"}


def _header_param(name: str, value: str | bytes) -> str:
    """A part header parameter, ``name="value"``, its value as :func:`sent_name` writes it."""
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    return f'{name}="{sent_name(text)}"'


def refuse_colliding_names(files: Sequence[DataFile]) -> None:
    """
    Each file is sent under its base name: two with the same name (``a/faq.txt`` and ``b/faq.txt``, or one path
    listed twice) would reach Sestek as one file name twice, and one of them would be lost or overwrite the other.
    Names are compared as they are sent (:func:`sent_name`), whatever their case.

    :param files: the checked data files, in order.
    """
    seen: dict[str, int] = {}
    for index, data_file in enumerate(files):
        # As the server will read it: 'a"b.txt' and 'a%22b.txt' are one name once encoded.
        key = sent_name(data_file.name).casefold()
        if key in seen:
            raise SestekValidationError(
                f"data_files[{index}]",
                data_file.name,
                f"is sent under the same file name as data_files[{seen[key]}]; Sestek keeps files by name: rename "
                "one of them",
            )
        seen[key] = index
