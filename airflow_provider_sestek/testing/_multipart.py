"""
Request body framing and an incremental ``multipart/form-data`` parser.

The emulator must accept multi-GiB uploads with constant memory, so bodies are read in bounded chunks
straight from the socket and file parts are written to disk (and hashed) as they arrive; nothing
ever holds a whole part in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from email.message import Message
from typing import BinaryIO, Protocol

from ._model import ReceivedFile

CHUNK_SIZE = 1 << 20
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_FIELD_BYTES = 16 << 20
MAX_PARTS = 10_000
_MAX_CHUNK_LINE = 4096


class IncompleteBody(ConnectionError):
    """The client closed the connection before sending the whole body it announced."""


class BadFraming(ValueError):
    """The body framing (chunked encoding) is invalid; the connection cannot be reused."""


class MultipartError(ValueError):
    """The multipart body is malformed (a client bug, answered with 400)."""


class BodyTooLarge(ValueError):
    """A body that is read into memory exceeds its limit."""


class Readable(Protocol):
    """The part of a buffered socket reader the body reader needs."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class BodyReader:
    """
    Read a request body framed by ``Content-Length`` or ``Transfer-Encoding: chunked``.

    :param rfile: the connection's buffered reader.
    :param length: the ``Content-Length``; ignored when ``chunked``.
    :param chunked: whether the body uses chunked transfer coding.
    """

    def __init__(self, rfile: Readable, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._remaining = 0 if chunked else (length or 0)
        self._chunk_left = 0
        self._done = not chunked and self._remaining == 0
        self.consumed = 0
        #: Called with the size of every piece read, so counters move during long uploads.
        self.on_data: Callable[[int], None] | None = None

    @property
    def done(self) -> bool:
        """Whether the whole body has been read."""
        return self._done

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        """
        Return up to ``size`` bytes of the body; ``b""`` once it is exhausted.

        :param size: the most bytes to return.
        :raises IncompleteBody: the peer closed the connection early.
        :raises BadFraming: the chunked encoding is invalid.
        """
        if self._done or size <= 0:
            return b""
        data = self._read_chunked(size) if self._chunked else self._read_length(size)
        if data:
            self.consumed += len(data)
            if self.on_data is not None:
                self.on_data(len(data))
        return data

    def _read_length(self, size: int) -> bytes:
        want = min(size, self._remaining)
        data = self._rfile.read(want)
        if len(data) < want:
            self.consumed += len(data)
            raise IncompleteBody(f"body ended after {self.consumed} bytes, {self._remaining - len(data)} missing")
        self._remaining -= want
        if self._remaining == 0:
            self._done = True
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(_MAX_CHUNK_LINE)
            if not line:
                raise IncompleteBody("connection closed inside a chunked body")
            if not line.endswith(b"\n"):
                raise BadFraming("chunk size line too long")
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadFraming(f"invalid chunk size line {line[:40]!r}") from None
            if chunk_size < 0:
                raise BadFraming("negative chunk size")
            if chunk_size == 0:
                self._skip_trailers()
                self._done = True
                return b""
            self._chunk_left = chunk_size
        want = min(size, self._chunk_left)
        data = self._rfile.read(want)
        if len(data) < want:
            raise IncompleteBody("connection closed inside a chunk")
        self._chunk_left -= want
        if self._chunk_left == 0:
            crlf = self._rfile.read(2)
            if crlf != b"\r\n":
                if len(crlf) < 2:
                    raise IncompleteBody("connection closed after a chunk")
                raise BadFraming("chunk not followed by CRLF")
        return data

    def _skip_trailers(self) -> None:
        while True:
            line = self._rfile.readline(_MAX_CHUNK_LINE)
            if not line:
                raise IncompleteBody("connection closed inside chunked trailers")
            if line in (b"\r\n", b"\n"):
                return

    def read_all(self, limit: int) -> bytes:
        """
        Read the whole body into memory (small bodies only).

        :param limit: the most bytes accepted.
        :raises BodyTooLarge: the body is longer than ``limit``.
        """
        parts: list[bytes] = []
        total = 0
        while True:
            data = self.read(min(CHUNK_SIZE, limit + 1 - total))
            if not data:
                return b"".join(parts)
            total += len(data)
            if total > limit:
                raise BodyTooLarge(f"body larger than {limit} bytes")
            parts.append(data)

    def drain(self) -> None:
        """Read and discard the rest of the body, so the connection can serve the next request."""
        while self.read(CHUNK_SIZE):
            pass


def body_reader(headers: Message, rfile: Readable) -> BodyReader:
    """
    A reader of the request body as the headers frame it (chunked, ``Content-Length`` or none).

    :param headers: the request headers.
    :param rfile: the connection's buffered reader.
    :raises ValueError: the framing headers are invalid; the connection cannot be reused.
    """
    encoding = headers.get("Transfer-Encoding")
    if encoding:
        if encoding.split(",")[-1].strip().lower() != "chunked":
            raise ValueError(f"unsupported Transfer-Encoding {encoding!r}")
        return BodyReader(rfile, None, True)
    raw_length = headers.get("Content-Length")
    if raw_length is None:
        return BodyReader(rfile, 0, False)
    try:
        length = int(raw_length)
    except ValueError:
        raise ValueError(f"invalid Content-Length {raw_length!r}") from None
    if length < 0:
        raise ValueError("negative Content-Length")
    return BodyReader(rfile, length, False)


def _split_params(value: str) -> list[str]:
    """Split a header value on ``;`` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        chars = iter(inner)
        for char in chars:
            # Both RFC 7230 quoted-pairs and urllib3's HTML5-style encoding escape with a backslash.
            out.append(next(chars, "") if char == "\\" else char)
        return "".join(out)
    return value


def _decode_ext_value(value: str) -> str | None:
    """Decode an RFC 5987 ``charset'lang'pct-encoded`` value (``filename*``)."""
    from urllib.parse import unquote

    pieces = value.split("'", 2)
    if len(pieces) != 3:
        return None
    charset = pieces[0] or "utf-8"
    try:
        return unquote(pieces[2], encoding=charset, errors="replace")
    except LookupError:
        return None


def parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """
    Split a header such as ``Content-Type`` or ``Content-Disposition`` into its value and parameters.

    :param value: the raw header value.
    :return: the lower-cased main value and the parameters (names lower-cased, values unquoted);
        ``filename*`` overrides ``filename`` as RFC 6266 says.
    """
    pieces = _split_params(value)
    main = pieces[0].strip().lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        name, sep, raw = piece.partition("=")
        if not sep:
            continue
        params[name.strip().lower()] = _unquote(raw.strip())
    if "filename*" in params:
        decoded = _decode_ext_value(params["filename*"])
        if decoded is not None:
            params["filename"] = decoded
    return main, params


class _FilePart:
    """A file part being streamed to disk."""

    def __init__(self, field: str, filename: str, content_type: str | None, stream: BinaryIO, path: str) -> None:
        self.field = field
        self.filename = filename
        self.content_type = content_type
        self.stream = stream
        self.path = path
        self.size = 0
        self.hasher = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> None:
        self.stream.write(data)
        self.hasher.update(data)
        self.size += len(data)

    def finish(self) -> ReceivedFile:
        self.stream.close()
        return ReceivedFile(
            field=self.field,
            filename=self.filename,
            content_type=self.content_type,
            size=self.size,
            sha256=self.hasher.hexdigest(),
            path=self.path,
        )


class _FieldPart:
    """A non-file part collected in memory (bounded by the parser's field budget)."""

    def __init__(self, name: str, charset: str) -> None:
        self.name = name
        self.charset = charset
        self.data = bytearray()


#: Opens the destination of a file part: (field name, file name, part index) -> (stream, path).
FileOpener = Callable[[str, str, int], tuple[BinaryIO, str]]


class MultipartParser:
    """
    Parse a ``multipart/form-data`` body incrementally.

    :param reader: the body.
    :param boundary: the boundary from the ``Content-Type`` header.
    :param open_file: where file parts go; called once per file part.
    :param chunk_size: how much to read from the socket at a time.
    """

    def __init__(self, reader: BodyReader, boundary: str, open_file: FileOpener, chunk_size: int = CHUNK_SIZE) -> None:
        if not boundary or len(boundary) > 200:
            raise MultipartError("invalid multipart boundary")
        self._reader = reader
        # Treating the body as if preceded by CRLF lets the first boundary match the same delimiter.
        self._delimiter = b"\r\n--" + boundary.encode("latin-1", "replace")
        self._open_file = open_file
        self._chunk_size = chunk_size
        self.fields: dict[str, list[str]] = {}
        self.files: list[ReceivedFile] = []
        self._open: _FilePart | None = None
        self._field_bytes = 0
        self._parts = 0

    def abort(self) -> None:
        """Close a file part left open by an error, so its file can be removed."""
        if self._open is not None:
            self._open.stream.close()
            self.files.append(self._open.finish())
            self._open = None

    def parse(self) -> tuple[dict[str, list[str]], list[ReceivedFile]]:
        """
        Read the whole body, writing file parts out as they arrive.

        :return: the non-file fields and the file parts, in arrival order.
        :raises MultipartError: the body is not valid multipart.
        :raises IncompleteBody: the client went away mid-body.
        """
        buf = bytearray(b"\r\n")
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        state = "preamble"
        part: _FilePart | _FieldPart | None = None
        eof = False
        while True:
            need_more = False
            if state == "preamble":
                index = buf.find(delimiter)
                if index < 0:
                    del buf[: max(0, len(buf) - keep)]
                    need_more = True
                else:
                    del buf[: index + len(delimiter)]
                    state = "after_delimiter"
            elif state == "after_delimiter":
                if len(buf) < 2:
                    need_more = True
                elif buf[:2] == b"--":
                    # The epilogue is meaningless but must be consumed to keep the connection in sync.
                    self._reader.drain()
                    return self.fields, self.files
                else:
                    end = buf.find(b"\r\n")
                    if end < 0:
                        if len(buf) > 1024:
                            raise MultipartError("garbage after a multipart boundary")
                        need_more = True
                    else:
                        if buf[:end].strip(b" \t"):
                            raise MultipartError("garbage after a multipart boundary")
                        del buf[: end + 2]
                        state = "headers"
            elif state == "headers":
                if buf[:2] == b"\r\n":
                    header_block = b""
                    del buf[:2]
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > MAX_PART_HEADER_BYTES:
                            raise MultipartError("multipart part headers too large")
                        need_more = True
                        header_block = b""
                    else:
                        header_block = bytes(buf[:end])
                        del buf[: end + 4]
                if not need_more:
                    part = self._start_part(header_block)
                    state = "body"
            else:  # body
                assert part is not None
                index = buf.find(delimiter)
                if index >= 0:
                    self._feed(part, buf, index)
                    del buf[: index + len(delimiter)]
                    self._finish_part(part)
                    part = None
                    state = "after_delimiter"
                else:
                    safe = len(buf) - keep
                    if safe > 0:
                        self._feed(part, buf, safe)
                        del buf[:safe]
                    need_more = True
            if need_more:
                if eof:
                    raise MultipartError("multipart body ended before its closing boundary")
                data = self._reader.read(self._chunk_size)
                if not data:
                    eof = True
                else:
                    buf += data

    def _feed(self, part: _FilePart | _FieldPart, buf: bytearray, end: int) -> None:
        if end <= 0:
            return
        if isinstance(part, _FilePart):
            # A memoryview avoids copying up to a MiB per chunk; it must be released before buf resizes.
            with memoryview(buf) as view:
                part.write(view[:end])
            return
        self._field_bytes += end
        if self._field_bytes > MAX_FIELD_BYTES:
            raise MultipartError("multipart form fields too large")
        part.data += buf[:end]

    def _start_part(self, header_block: bytes) -> _FilePart | _FieldPart:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MultipartError("too many multipart parts")
        headers: dict[str, str] = {}
        for raw_line in header_block.split(b"\r\n"):
            if not raw_line.strip():
                continue
            name, sep, value = raw_line.decode("utf-8", "replace").partition(":")
            if not sep:
                raise MultipartError("malformed multipart part header")
            headers[name.strip().lower()] = value.strip()
        disposition, params = parse_header_value(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in params:
            raise MultipartError("multipart part without a form-data Content-Disposition name")
        name = params["name"]
        content_type = headers.get("content-type")
        if "filename" in params:
            stream, path = self._open_file(name, params["filename"], len(self.files))
            self._open = _FilePart(name, params["filename"], content_type, stream, path)
            return self._open
        charset = "utf-8"
        if content_type:
            charset = parse_header_value(content_type)[1].get("charset", "utf-8")
        return _FieldPart(name, charset)

    def _finish_part(self, part: _FilePart | _FieldPart) -> None:
        if isinstance(part, _FilePart):
            self.files.append(part.finish())
            self._open = None
            return
        try:
            text = part.data.decode(part.charset, "replace")
        except LookupError:
            text = part.data.decode("utf-8", "replace")
        self.fields.setdefault(part.name, []).append(text)
