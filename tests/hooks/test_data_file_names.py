"""Data files are sent under their base names: two that would arrive under one name are refused before any request."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "faq.txt", tmp_path / "b" / "FAQ.txt"
    first.write_text("Q: one?\nA: 1.\n")
    second.write_text("Q: two?\nA: 2.\n")
    return first, second


def test_the_same_file_name_from_two_folders_is_refused(
    sestek_conn: SestekEmulator, two_folders: tuple[Path, Path]
) -> None:
    first, second = two_folders
    with pytest.raises(SestekValidationError) as refused:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=[str(first), str(second)])
    assert refused.value.field == "data_files[1]"
    assert "same file name as data_files[0]" in str(refused.value)
    assert sestek_conn.requests == []  # nothing half-submitted, not even a token


def test_one_path_listed_twice_is_refused(sestek_conn: SestekEmulator, two_folders: tuple[Path, Path]) -> None:
    first, _ = two_folders
    with pytest.raises(SestekValidationError, match=r"data_files\[1\]"):
        SestekHook().prepare_training("faq-bot", "FAQ", data_files=[str(first), str(first)])


def test_distinct_names_are_sent_as_they_are(sestek_conn: SestekEmulator, two_folders: tuple[Path, Path]) -> None:
    first, second = two_folders
    renamed = second.with_name("faq-2.txt")
    second.rename(renamed)
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[str(first), str(renamed)])
    (post,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert sorted(f.filename for f in post.files) == ["faq-2.txt", "faq.txt"]


@pytest.mark.parametrize(
    ("first", "second"), [('a"b.txt', "a%22b.txt"), ('A"B.txt', "a%22b.txt"), ("a\nb.txt", "A%0Ab.txt")]
)
def test_names_that_differ_only_until_encoded_for_the_body_are_refused(
    sestek_conn: SestekEmulator, tmp_path: Path, first: str, second: str
) -> None:
    """The multipart body writes '"' as %22 (CR, LF likewise): two local names sent as one are refused."""
    paths = []
    for folder, name in (("a", first), ("b", second)):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / name
        path.write_text(f"Q: {folder}?\nA: {folder}.\n")
        paths.append(str(path))
    with pytest.raises(SestekValidationError) as refused:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=paths)
    assert refused.value.field == "data_files[1]"
    assert "same file name as data_files[0]" in str(refused.value)
    assert sestek_conn.requests == []


def test_the_name_compared_is_the_name_the_body_sends() -> None:
    from airflow_provider_sestek.hooks.upload import MultipartBody, sent_name

    assert sent_name('x"y\r\nz.txt') == "x%22y%0D%0Az.txt"
    body = MultipartBody([("file", ('x"y\r\nz.txt', b"data", "text/plain"))], boundary="b").read()
    assert b'filename="x%22y%0D%0Az.txt"' in body
