"""
The training endpoint: the upload form streamed to disk part by part, its validation as the API
answers it, and the start of a training.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import urllib.parse
from typing import BinaryIO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from ._endpoints import Endpoint
from ._fault_delivery import deliver_before
from ._faults import FaultKind, FaultWhen
from ._http import RECORD, Listeners, raw_header, render
from ._lifecycle import TrainingRequest
from ._model import SCOPE_TRAINING, CallbackInfo, ReceivedFile, RecordedRequest
from ._state import EmulatorState
from ._wire import ABP_INVALID, Reply, abp_error, abp_validation, experiment, json_reply, problem

__all__ = ["FormError", "read_form", "train"]

_CHUNK = 1 << 20
_SMALL_BODY_LIMIT = 16 << 20
_MAX_FIELD_BYTES = 1 << 20
_MAX_PARTS = 10_000
_MODEL_ID_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_MODEL_ID_PATTERN = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_MODEL_ID_MAX = 63
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class FormError(ValueError):
    """The body is not a readable ``multipart/form-data`` form."""


@functools.lru_cache(maxsize=1024)
def _disposition(header: str | None) -> tuple[str | None, str | None]:
    # aiohttp's parser costs about 0.3 ms a call and BodyPartReader.name/.filename call it once each;
    # clients send the same few headers again and again, so one cached parse serves a whole benchmark.
    _, params = parse_content_disposition(header)
    return content_disposition_filename(params, "name"), content_disposition_filename(params, "filename")


async def _receive_file(
    part: BodyPartReader, name: str, filename: str, index: int, upload_dir: str | None
) -> ReceivedFile:
    out: BinaryIO | None = None
    path = ""
    if upload_dir is not None:
        os.makedirs(upload_dir, exist_ok=True)
        base = os.path.basename(filename.replace("\\", "/"))
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "file"
        path = os.path.join(upload_dir, f"{index:04d}-{safe}")
        out = open(path, "wb")
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := await part.read_chunk(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    content_type = part.headers.get("Content-Type")
    return ReceivedFile(name, filename, content_type, size, digest.hexdigest(), path)


async def read_form(request: web.Request, upload_dir: str | None) -> tuple[dict[str, list[str]], list[ReceivedFile]]:
    """
    Read a ``multipart/form-data`` body; file parts stream to ``upload_dir`` without being held in memory.

    :param request: the request.
    :param upload_dir: where file parts go; ``None`` only hashes and counts them.
    :return: the non-file fields and the file parts, in arrival order.
    :raises FormError: the body is not a readable form.
    """
    fields: dict[str, list[str]] = {}
    files: list[ReceivedFile] = []
    field_bytes = 0
    try:
        reader = await request.multipart()
        for _ in range(_MAX_PARTS):
            part = await reader.next()
            if part is None:
                return fields, files
            if not isinstance(part, BodyPartReader):
                raise FormError("nested multipart parts are not form fields")
            name, filename = _disposition(part.headers.get("Content-Disposition"))
            if name is None:
                raise FormError("multipart part without a form-data Content-Disposition name")
            if filename is not None:
                files.append(await _receive_file(part, name, filename, len(files), upload_dir))
                continue
            data = bytearray()
            while chunk := await part.read_chunk(_CHUNK):
                field_bytes += len(chunk)
                if field_bytes > _MAX_FIELD_BYTES:
                    raise FormError("multipart form fields too large")
                data += chunk
            # Most fields carry no Content-Type: only then is the default charset a shortcut.
            charset = part.get_charset("utf-8") if "Content-Type" in part.headers else "utf-8"
            try:
                text = data.decode(charset, "replace")
            except LookupError:
                text = data.decode("utf-8", "replace")
            fields.setdefault(name, []).append(text)
        raise FormError("too many multipart parts")
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        # aiohttp's reader reports a body that ends before its closing boundary with the first three,
        # and a part header it cannot parse (a NUL, a line over its limit) with HttpProcessingError.
        if isinstance(exc, FormError):
            raise
        raise FormError(str(exc) or "multipart body ended before its closing boundary") from exc


def _discard(upload_dir: str) -> None:
    shutil.rmtree(upload_dir, ignore_errors=True)


async def _read(request: web.Request, upload_dir: str) -> tuple[dict[str, list[str]], list[ReceivedFile]] | Reply:
    media_type = request.content_type
    if media_type == "application/x-www-form-urlencoded":
        # ASP.NET binds [FromForm] from urlencoded bodies too; only files are impossible that way.
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return abp_error(413, "Request body too large.")
        return urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True), []
    if media_type != "multipart/form-data":
        return problem(415)
    try:
        return await read_form(request, upload_dir)
    except FormError as exc:
        return abp_error(400, ABP_INVALID, details=f"Failed to read the request form. {exc}")


async def train(state: EmulatorState, listeners: Listeners, request: web.Request) -> web.StreamResponse:
    """
    ``POST .../train``: authorize, stream the form to disk, validate it and start the training.

    :param state: the emulator's state.
    :param listeners: where the server listens (a ``redirect`` fault may need the foreign origin).
    :param request: the request.
    """
    record: RecordedRequest = request[RECORD]
    denied = state.tokens.authorize(raw_header(request, "Authorization"), SCOPE_TRAINING)
    if denied is not None:
        return render(request, denied, final=True)
    upload_dir = state.new_upload_dir()
    accepted = False
    try:
        parsed = await _read(request, upload_dir)
        if isinstance(parsed, Reply):
            _discard(upload_dir)
            return render(request, parsed, final=True)
        fields, files = parsed
        record.form = state.redactor.form(fields)
        record.files = files
        model_id = fields["modelId"][0] if fields.get("modelId") else None
        record.model_id = model_id
        if model_id is not None:
            fault = state.take_fault(Endpoint.TRAIN, model_id, FaultWhen.BEFORE, True)
            if fault is not None:
                if fault.kind not in (FaultKind.DELAY, FaultKind.DRIP):
                    # Removed before answering, like any rejected upload; delay and drip go on handling.
                    _discard(upload_dir)
                early = await deliver_before(state, listeners, request, record, fault)
                if early is not None:
                    return early
        reply = _create(state, fields, files, upload_dir)
        accepted = reply.status == 200
        if not accepted:
            # Removed before answering, so a client (or test) never sees a rejected upload on disk.
            _discard(upload_dir)
        return render(request, reply)
    finally:
        if not accepted:
            _discard(upload_dir)


_NO_URL = urllib.parse.urlsplit("")


def _split(url: str) -> urllib.parse.SplitResult | None:
    # urlsplit raises for some netlocs (an unclosed bracket, characters NFKC changes): a 400, not a 500.
    try:
        return urllib.parse.urlsplit(url)
    except ValueError:
        return None


def _validate(
    model_id: str | None, project_name: str | None, has_files: bool, urls: list[str]
) -> list[tuple[str, list[str]]]:
    errors: list[tuple[str, list[str]]] = []
    if not model_id or not model_id.strip():
        errors.append(("The ModelId field is required.", ["modelId"]))
    else:
        if len(model_id) > _MODEL_ID_MAX:
            message = f"The field ModelId must be a string with a maximum length of {_MODEL_ID_MAX}."
            errors.append((message, ["modelId"]))
        if not _MODEL_ID_RE.fullmatch(model_id):
            errors.append((f"The field ModelId must match the regular expression '{_MODEL_ID_PATTERN}'.", ["modelId"]))
    if not project_name or not project_name.strip():
        errors.append(("The ProjectName field is required.", ["projectName"]))
    if not has_files and not urls:
        errors.append(("At least one of DataFiles or DataUrls must be provided.", ["dataFiles", "dataUrls"]))
    for url in urls:
        parts = _split(url)
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append((f"The DataUrls value '{url}' is not a valid absolute http(s) URL.", ["dataUrls"]))
    return errors


def _create(state: EmulatorState, fields: dict[str, list[str]], files: list[ReceivedFile], upload_dir: str) -> Reply:
    def first(name: str) -> str | None:
        values = fields.get(name)
        return values[0] if values else None

    model_id = first("modelId")
    project_name = first("projectName")
    data_files = [f for f in files if f.field == "dataFiles" and (f.filename or f.size)]
    data_urls = [u.strip() for u in fields.get("dataUrls", []) if u.strip()]
    errors = _validate(model_id, project_name, bool(data_files), data_urls)
    if errors:
        return abp_validation(errors)
    assert model_id is not None and project_name is not None
    callback = None
    address = (first("callbackAddress") or "").strip()
    if address:
        callback = CallbackInfo(
            address=address,
            identity_address=(first("callbackIdentityAddress") or "").strip() or None,
            client_id=first("callbackClientId") or None,
            client_secret=first("callbackClientSecret") or None,
        )
    local_urls = [u for u in data_urls if ((_split(u) or _NO_URL).hostname or "") in _LOOPBACK_HOSTS]
    request = TrainingRequest(model_id, project_name, tuple(data_files), tuple(data_urls), callback, upload_dir)
    gen = state.create_training(request, local_urls)
    if gen is None:
        return abp_error(403, f"The training is still in progress for the same model ID: {model_id}")
    body = experiment(
        model_id,
        project_name=gen.project_name,
        project_id=gen.project_id,
        experiment_id=gen.experiment_id,
        module_version_id=state.module_version_id,
        created_at=gen.created_at,
        status_message=state.case("Initialized"),
        datasets=len(gen.files) + len(gen.urls),
    )
    return json_reply(200, body)
