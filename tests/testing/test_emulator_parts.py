"""
The upload form over HTTP (aiohttp's multipart reader underneath: only what the emulator makes of it is
tested here) and the emulator's tiny retriever.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from airflow_provider_sestek.testing import SestekEmulator
from airflow_provider_sestek.testing._retrieval import PassageIndex, split_passages

from ._helpers import FAQ, TRAIN, bearer, sha256

BOUNDARY = "----b0undary"


def _body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\nepilogue".encode()


def _post(emu: SestekEmulator, http: requests.Session, body: bytes) -> requests.Response:
    headers = {**bearer(emu.issue_token()), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return http.post(emu.url + TRAIN, headers=headers, data=body, timeout=10)


def test_contents_that_almost_contain_the_delimiter_survive(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    tricky = b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n--" + b"\r" * 5 + os.urandom(300)
    body = _body(
        ("modelId", None, b"model-1"),
        ("projectName", None, b"P"),
        ("dataFiles", "a.txt", tricky),
        ("dataUrls", None, "https://x/ü".encode()),
        ("dataFiles", "empty.txt", b""),
        ("dataUrls", None, b""),
    )
    response = _post(sestek_emulator, http, body)
    assert response.status_code == 200, response.text
    record = sestek_emulator.requests[-1]
    assert record.form == {"modelId": ["model-1"], "projectName": ["P"], "dataUrls": ["https://x/ü", ""]}
    assert [(f.filename, f.size, f.sha256) for f in record.files] == [
        ("a.txt", len(tricky), sha256(tricky)),
        ("empty.txt", 0, sha256(b"")),
    ]
    assert Path(record.files[0].path).read_bytes() == tricky
    assert record.body_size == len(body)


@pytest.mark.parametrize(
    "body",
    [
        _body(("modelId", None, b"m"))[: -len("--\r\nepilogue")],  # no closing boundary
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--".encode(),  # no disposition
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--".encode(),  # no name
        b"no boundary at all",
    ],
)
def test_malformed_multipart_is_a_400_and_creates_nothing(
    sestek_emulator: SestekEmulator, http: requests.Session, body: bytes
) -> None:
    response = _post(sestek_emulator, http, body)
    assert response.status_code == 400 and response.headers["_AbpErrorFormat"] == "true", response.text
    assert "Failed to read the request form" in response.json()["error"]["details"]
    assert sestek_emulator.counters["trainings_created"] == 0
    assert list((sestek_emulator.data_dir / "uploads").iterdir()) == []


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


def test_retrieval_matches_word_forms() -> None:
    from airflow_provider_sestek.testing._retrieval import stem

    assert {stem(w) for w in ("close", "closes", "closing", "closed")} == {"clos"}
    assert {stem(w) for w in ("open", "opens", "opening", "opened")} == {"open"}
    assert stem("hours") == stem("hour") and stem("stopped") == stem("stop") and stem("called") == "call"
    assert stem("is") == "is" and stem("status") == stem("statuses")
    index = PassageIndex.from_documents([("s.txt", "Our store opens at 9 and closes at 18 on weekdays.")])
    [(passage, score)] = index.search("When do you close?")
    assert passage.answer == "Our store opens at 9 and closes at 18 on weekdays." and 0 < score <= 1
