"""
Training files in object storage (``s3://``, ``gs://``, ``abfs://`` ...), read through Airflow's
``ObjectStoragePath`` (``airflow.sdk`` on Airflow 3, ``airflow.io`` on 2.11, both through common-compat).

A URL names the Airflow connection that reads it the way Airflow does, ``s3://CONN_ID@bucket/key`` (or an
``ObjectStoragePath(..., conn_id=...)``); without one the filesystem's own default credentials apply. One
metadata request per file checks it (existence, kind, size, content type) before any Sestek request; the
upload then reads it in bounded blocks. Imported only when a training has an object-storage file: the
filesystem packages (s3fs, botocore ...) cost a DAG parse hundreds of milliseconds.
"""

from __future__ import annotations

import mimetypes
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.retry import describe_exception

#: Bytes fetched from object storage per request while uploading. fsspec's read-ahead cache holds one block
#: (s3fs would otherwise fetch 50 MiB at a time): 8 MiB keeps the client's memory far below 64 MiB and
#: needs 32 requests for a 256 MiB object.
REMOTE_BLOCK_SIZE = 8 * 1024 * 1024

#: Longest wait, in seconds, for the metadata request that checks an object. botocore's defaults (60 s per
#: read, 5 attempts) times s3fs's own 5 retries kept a task stuck for about 25 minutes on an endpoint that
#: accepts connections and never answers, before any Sestek request.
CHECK_TIMEOUT = 120.0

#: What to install for a scheme, beside fsspec's own hint: Airflow reads these schemes through providers.
PROVIDER_PACKAGES = {
    "s3": "pip install 'apache-airflow-providers-amazon[s3fs]'",
    "s3a": "pip install 'apache-airflow-providers-amazon[s3fs]'",
    "gs": "pip install apache-airflow-providers-google",
    "gcs": "pip install apache-airflow-providers-google",
    "abfs": "pip install apache-airflow-providers-microsoft-azure",
    "az": "pip install apache-airflow-providers-microsoft-azure",
}

#: Schemes of S3, whose bucket names botocore checks before any request (with its regex as the message).
_S3_SCHEMES = frozenset({"s3", "s3a", "s3n"})
#: The names botocore accepts (legacy buckets may have capitals and "_"; new ones are 3-63 of [a-z0-9.-]).
_S3_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}", re.ASCII)

#: Content types that say nothing (boto3 and most uploaders set these by default): the name says more.
_GENERIC_TYPES = frozenset({"binary/octet-stream", "application/octet-stream", "application/unknown"})
#: ``type/subtype`` with optional parameters, printable ASCII only: the value goes into a part header.
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*(?:\s*;[ -~]*)?", re.ASCII)
#: Where filesystems put an object's declared content type in ``info()``: s3fs, gcsfs, others.
_CONTENT_TYPE_KEYS = ("ContentType", "contentType", "content_type", "mimetype")


@dataclass(frozen=True)
class RemoteObject:
    """
    An object checked before the upload.

    :param name: the base name of its key (the part's file name).
    :param size: its size in bytes.
    :param content_type: its declared content type when specific, else guessed from the name.
    """

    name: str
    size: int
    content_type: str


# The texts fsspec, universal-pathlib and Airflow use for "nothing serves this scheme"; any other ValueError is
# the URL's own fault (urllib's "Invalid IPv6 URL") and must not send the user off to install a package.
_NO_FILESYSTEM = re.compile(r"Unsupported filesystem|No filesystem registered|Protocol not known", re.IGNORECASE)


def check_object(field_name: str, location: str, shown: str, scheme: str) -> RemoteObject:
    """
    Check that an object-storage URL names a readable object, with one metadata request.

    :param field_name: the parameter, for errors (``data_files[0]``).
    :param location: the URL as given (``s3://conn_id@bucket/key``).
    :param shown: the URL fit for messages (no user info).
    :param scheme: its scheme, lower case.
    :raises SestekValidationError: missing package, bucket or object; a folder; access denied; any other
        error of the filesystem (its text, never a credential).
    """
    path = object_path(field_name, location, shown, scheme)
    conn_id = _conn_id(path)
    try:
        info = _info(path)
    except TimeoutError:  # fsspec's FSTimeoutError too
        raise SestekValidationError(
            field_name,
            shown,
            f"the object store did not answer within {CHECK_TIMEOUT:g} s: {_endpoint_hint(scheme, conn_id)}",
        ) from None
    except FileNotFoundError:
        raise SestekValidationError(field_name, shown, _not_found(path, location, conn_id)) from None
    except PermissionError:
        raise SestekValidationError(
            field_name, shown, f"access denied by the object store: {_credentials_hint(scheme, conn_id)}"
        ) from None
    except (ImportError, ValueError) as exc:  # Airflow 2.11 looks the filesystem up on first use
        raise filesystem_error(field_name, shown, scheme, exc, "cannot be read") from None
    except Exception as exc:  # network, connection lookup: whatever the filesystem package raises
        raise SestekValidationError(field_name, shown, f"cannot be read: {describe_exception(exc)}") from None
    if info.get("type") == "directory":
        raise SestekValidationError(
            field_name, shown, "is a folder (a key prefix), not an object; list the objects in it instead"
        )
    size = info.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise SestekValidationError(field_name, shown, "the object store does not tell its size")
    name = location.rstrip("/").rsplit("/", 1)[-1] or location
    return RemoteObject(name, size, content_type(name, info))


def object_path(field_name: str, location: str, shown: str, scheme: str) -> Any:
    """
    The ``ObjectStoragePath`` of an object-storage URL, checked without a request: no ``user:password@`` in it,
    a bucket name botocore accepts (S3), a filesystem package that serves the scheme (Airflow 3 looks it up
    here), and the connection it names defined and not a Sestek one.

    :param field_name: the parameter, for errors.
    :param location: the URL as given (``s3://conn_id@bucket/key``).
    :param shown: the URL fit for messages (no user info).
    :param scheme: its scheme, lower case.
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    # What redact_url() removed: "user:password@" is a key and its secret pasted into the URL, which the
    # filesystem would take for a connection id or a bucket and echo in its errors.
    removed = location.partition("://")[2][: len(location) - len(shown)]
    if ":" in removed:
        raise SestekValidationError(
            field_name,
            shown,
            f"has credentials (user:password@) in it; keep them in an Airflow connection and name it as "
            f"{scheme}://CONN_ID@bucket/key",
        )
    if scheme in _S3_SCHEMES:
        _check_bucket(field_name, location, shown, scheme)
    try:
        path = ObjectStoragePath(location)
    except (ImportError, ValueError) as exc:  # "Unsupported filesystem" (Airflow 3), or a URL that does not parse
        raise filesystem_error(field_name, shown, scheme, exc, "is not a valid URL") from None
    conn_id = _conn_id(path)
    if conn_id:
        _check_connection(field_name, shown, conn_id)
    return path


def filesystem_error(
    field_name: str, shown: str, scheme: str, exc: ImportError | ValueError, otherwise: str
) -> SestekValidationError:
    """
    The error for what making or first using a filesystem raised: a package to install, a scheme no filesystem
    serves, or ``otherwise`` with the error's text.

    :param field_name: the parameter, for the error.
    :param shown: the URL fit for messages.
    :param scheme: the URL scheme, lower case.
    :param exc: what was raised.
    :param otherwise: the rule for any other ``ValueError`` ("is not a valid URL", "cannot be read").
    """
    if isinstance(exc, ImportError):
        return SestekValidationError(field_name, shown, needs_package(scheme, exc))
    if _NO_FILESYSTEM.search(str(exc)):
        return no_filesystem(field_name, shown, scheme)
    return SestekValidationError(field_name, shown, f"{otherwise}: {describe_exception(exc)}")


def open_object(location: str) -> IO[bytes]:
    """
    The object, open for reading in :data:`REMOTE_BLOCK_SIZE` blocks (the caller closes it).

    The filesystem's own file is used, not ``ObjectStoragePath.open()``, whose wrapper records a lineage
    input on every ``read()`` call and would use the filesystem's default block size (50 MiB for s3fs).

    :param location: the URL as checked by :func:`check_object`.
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    try:
        path = ObjectStoragePath(location)
        handle: IO[bytes] = path.fs.open(path.path, "rb", block_size=REMOTE_BLOCK_SIZE)
    except OSError:
        raise
    except Exception as exc:  # a filesystem's own error type: the upload reports OSErrors by the file's name
        raise OSError(describe_exception(exc)) from None
    return handle


def _check_bucket(field_name: str, location: str, shown: str, scheme: str) -> None:
    """An S3 URL names a bucket botocore accepts (else it answers with its regex, or "bucket ''" is looked up)."""
    try:
        bucket = urllib.parse.urlsplit(location).netloc.rpartition("@")[2]
    except ValueError:
        bucket = None
    if not bucket:
        raise SestekValidationError(field_name, shown, f"names no bucket; write it as {scheme}://CONN_ID@bucket/key")
    if not _S3_BUCKET.fullmatch(bucket):
        raise SestekValidationError(
            field_name,
            shown,
            f"{bucket[:80]!r} is not a valid S3 bucket name: letters, digits, '.', '-' and '_' only (up to 255; "
            "buckets made since 2018: 3 to 63 lower-case letters, digits, '.' and '-')",
        )


def _info(path: Any) -> Any:
    """The object's metadata, within :data:`CHECK_TIMEOUT` on an asynchronous filesystem (s3fs, gcsfs, adlfs)."""
    from fsspec.asyn import AsyncFileSystem

    fs = path.fs
    if isinstance(fs, AsyncFileSystem) and not fs.asynchronous:
        return within_timeout(fs, "info", path.path)
    return path.stat()


def within_timeout(fs: Any, method: str, key: str) -> Any:
    """
    ``fs.<method>(key)``, within :data:`CHECK_TIMEOUT` on an asynchronous filesystem (s3fs, gcsfs, adlfs).

    :param fs: the filesystem.
    :param method: a method of fsspec's (``info``, ``exists``).
    :param key: its path argument.
    """
    from fsspec.asyn import AsyncFileSystem

    if isinstance(fs, AsyncFileSystem) and not fs.asynchronous:
        return getattr(fs, method)(key, timeout=CHECK_TIMEOUT)  # fsspec's sync() takes the timeout
    return getattr(fs, method)(key)


def _endpoint_hint(scheme: str, conn_id: str | None) -> str:
    if conn_id:
        return f"check the endpoint (endpoint_url) and network access of the Airflow connection {conn_id!r}"
    return f"check the network access to it; an Airflow connection is named as {scheme}://CONN_ID@bucket/key"


def content_type(name: str, info: dict[str, Any]) -> str:
    """
    The part's content type: the object's declared one when it is specific and well-formed, else the one
    the name suggests, else ``application/octet-stream``.

    :param name: the object's base name.
    :param info: the filesystem's ``info()`` of the object.
    """
    for key in _CONTENT_TYPE_KEYS:
        declared = info.get(key)
        if isinstance(declared, str):
            declared = declared.strip()
            if len(declared) <= 255 and _MIME_TYPE.fullmatch(declared):
                if declared.split(";", 1)[0].strip().lower() not in _GENERIC_TYPES:
                    return declared
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _conn_id(path: Any) -> str | None:
    """The Airflow connection of a path (an attribute on Airflow 3, a storage option on 2.11)."""
    try:
        conn_id = path.conn_id
    except AttributeError:
        conn_id = None
    if conn_id is None:
        options = getattr(path, "storage_options", None)
        conn_id = options.get("conn_id") if isinstance(options, Mapping) else None
    return str(conn_id) if conn_id else None


def _check_connection(field_name: str, shown: str, conn_id: str) -> None:
    """
    The connection a URL names must exist: the amazon provider on Airflow 3 falls back to the default
    credentials (then anonymous access) for an unknown one, and a typo would read as "access denied".
    """
    from airflow.providers.common.compat.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or the lookup itself failed
        raise SestekValidationError(
            field_name,
            shown,
            f"names the Airflow connection {conn_id!r}, which cannot be used: {describe_exception(exc)}",
        ) from None
    if conn.conn_type == "sestek":
        # The filesystem would sign with the Sestek client id and secret and send the id to the object store.
        raise SestekValidationError(
            field_name,
            shown,
            f"names the Airflow connection {conn_id!r}, but {conn_id!r} is a Sestek connection; read object "
            "storage through a connection of its own (an 'aws' connection for s3://)",
        )


def _not_found(path: Any, location: str, conn_id: str | None) -> str:
    """Which of bucket and key is missing: one more metadata request, on the error path only."""
    # From the URL itself: Airflow 2.11's ObjectStoragePath.bucket keeps the "conn_id@".
    parts = urllib.parse.urlsplit(location)
    bucket, key = parts.netloc.rpartition("@")[2], parts.path.lstrip("/")
    through = f" (looked up through connection {conn_id!r})" if conn_id else ""
    try:
        bucket_exists = bool(bucket) and bool(path.fs.exists(bucket))
    except Exception:  # cannot tell: say what is certain
        return f"does not exist in object storage{through}"
    if bucket and not bucket_exists:
        return f"does not exist in object storage: there is no bucket {bucket!r}{through}"
    return f"does not exist in object storage: bucket {bucket!r} has no object {key!r}{through}"


def _credentials_hint(scheme: str, conn_id: str | None) -> str:
    if conn_id:
        return f"check the credentials and permissions of the Airflow connection {conn_id!r}"
    return (
        "no Airflow connection is named in the URL, so the filesystem's default credentials were used; "
        f"name one as {scheme}://CONN_ID@bucket/key"
    )


def no_filesystem(field_name: str, shown: str, scheme: str) -> SestekValidationError:
    """
    The error for a scheme that no filesystem serves: a package to install when fsspec knows the scheme.

    :param field_name: the parameter, for the error.
    :param shown: the URL fit for messages.
    :param scheme: the URL scheme, lower case.
    """
    from fsspec.registry import known_implementations

    if scheme in known_implementations or scheme in PROVIDER_PACKAGES:
        return SestekValidationError(field_name, shown, needs_package(scheme, None))
    return SestekValidationError(
        field_name, shown, f"no filesystem is known for {scheme}:// (give a local path or an object-storage URL)"
    )


def needs_package(scheme: str, exc: ImportError | None) -> str:
    """
    What to install for a URL scheme, in fsspec's own words when it knows the scheme, and the Airflow provider
    that serves it.

    :param scheme: the URL scheme, lower case.
    :param exc: the import error raised, if any.
    """
    from fsspec.registry import known_implementations

    known = known_implementations.get(scheme, {})
    hint = str(known.get("err") or exc or f"install the fsspec implementation of {scheme}")
    provider = PROVIDER_PACKAGES.get(scheme)
    return f"{scheme}:// needs a filesystem package: {hint}" + (f" ({provider})" if provider else "")
