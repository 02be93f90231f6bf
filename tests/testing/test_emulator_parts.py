"""Unit tests of the emulator's streaming multipart parser and its tiny retriever."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from airflow_provider_sestek.testing._multipart import (
    BadFraming,
    BodyReader,
    IncompleteBody,
    MultipartError,
    MultipartParser,
    parse_header_value,
)
from airflow_provider_sestek.testing._retrieval import PassageIndex, split_passages

from ._helpers import FAQ, sha256

BOUNDARY = "----b0undary"


def _body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\nepilogue".encode()


def _parse(body: bytes, tmp_path: Path, chunk_size: int) -> tuple[dict[str, list[str]], list[tuple[str, str, bytes]]]:
    def open_file(field: str, filename: str, index: int) -> tuple[BinaryIO, str]:
        path = str(tmp_path / f"{chunk_size}-{index}")
        return open(path, "wb"), path

    reader = BodyReader(io.BytesIO(body), len(body), False)
    fields, files = MultipartParser(reader, BOUNDARY, open_file, chunk_size=chunk_size).parse()
    assert reader.done and reader.consumed == len(body)
    contents = []
    for received in files:
        data = Path(received.path).read_bytes()
        assert (received.size, received.sha256) == (len(data), sha256(data))
        contents.append((received.field, received.filename, data))
    return fields, contents


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 16, 61, 4096])
def test_parts_split_anywhere_across_reads(tmp_path: Path, chunk_size: int) -> None:
    # Contents that almost contain the delimiter must survive any split point.
    tricky = b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n--" + b"\r" * 5 + os.urandom(300)
    body = _body(
        ("modelId", None, b"model-1"),
        ("dataFiles", "a.txt", tricky),
        ("dataUrls", None, "https://x/ü".encode()),
        ("dataFiles", "empty.txt", b""),
        ("dataUrls", None, b""),
    )
    fields, files = _parse(body, tmp_path, chunk_size)
    assert fields == {"modelId": ["model-1"], "dataUrls": ["https://x/ü", ""]}
    assert files == [("dataFiles", "a.txt", tricky), ("dataFiles", "empty.txt", b"")]


@pytest.mark.parametrize(
    "body",
    [
        _body(("modelId", None, b"m"))[: -len("--\r\nepilogue")],  # no closing boundary
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--".encode(),  # no disposition
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--".encode(),  # no name
        b"no boundary at all",
    ],
)
def test_malformed_multipart(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(MultipartError):
        _parse(body, tmp_path, 5)


def test_chunked_body_reader() -> None:
    raw = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT REQUEST"
    stream = io.BytesIO(raw)
    reader = BodyReader(stream, None, True)
    assert reader.read_all(100) == b"hello world"
    assert reader.done and stream.read() == b"NEXT REQUEST"
    with pytest.raises(IncompleteBody):
        BodyReader(io.BytesIO(b"a\r\nshort"), None, True).read_all(100)
    with pytest.raises(BadFraming):
        BodyReader(io.BytesIO(b"zz\r\n"), None, True).read_all(100)
    with pytest.raises(IncompleteBody):
        BodyReader(io.BytesIO(b"abc"), 10, False).read_all(100)


def test_parse_header_value() -> None:
    assert parse_header_value('multipart/form-data; boundary="a;b"') == ("multipart/form-data", {"boundary": "a;b"})
    main, params = parse_header_value(
        'form-data; name="dataFiles"; filename="a\\"b.txt"; filename*=UTF-8\'\'%C5%9Fube.txt'
    )
    assert main == "form-data"
    assert params["name"] == "dataFiles" and params["filename"] == "şube.txt"
    assert parse_header_value("Application/JSON")[0] == "application/json"


def test_passages_from_faq_blocks_with_and_without_blank_lines() -> None:
    compact = "Q: First question?\nA: First answer.\nQ: Second question?\nA: Second answer.\n"
    passages = split_passages("c.txt", compact)
    assert [p.answer for p in passages] == ["First answer.", "Second answer."]
    plain = split_passages("p.txt", "How long is shipping?\nThree days.\n\nJust a sentence.")
    assert [p.answer for p in plain] == ["Three days.", "Just a sentence."]
    long = split_passages("l.txt", "\n".join(["word " * 40] * 20))
    assert len(long) > 1 and all(len(p.content) <= 1500 for p in long)


def test_retrieval_ranks_the_matching_passage_first() -> None:
    index = PassageIndex.from_documents([("faq.txt", FAQ), ("noise.txt", "Passwords are case sensitive.")])
    hits = index.search("How do I reset my password?")
    assert hits[0][0].answer.startswith("Open Settings")
    assert all(0 < score <= 1 for _, score in hits)
    assert index.search("the and of") == []
