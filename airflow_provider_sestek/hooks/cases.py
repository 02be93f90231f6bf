"""
The golden set of an evaluation: a list of cases, or a JSONL, JSON, YAML or CSV file (a local path or an
object-storage URL, read like ``data_files``).

JSONL and CSV are streamed line by line, so memory does not grow with the number of cases; JSON and YAML are
one document and are read whole. :meth:`CaseSource.count` reads every case once and checks it (the rules are
in :mod:`airflow_provider_sestek.api.evaluation`) before any Sestek request; :meth:`CaseSource.cases` then
reads them again for the evaluation (for object storage, a second download).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

from airflow_provider_sestek import api
from airflow_provider_sestek.api.evaluation import CASE_FIELDS, EvalCase, parse_case
from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.upload import DataFile, check_data_file

#: File formats by name ending; the name decides, as for the content type of a data file.
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
#: CSV columns whose cell may hold a list: JSON text (``["a", "b"]``) or one plain string.
_LIST_COLUMNS = frozenset({"expect_all", "expect_any", "expect_regex", "expect_sources", "forbid"})


class CaseSource:
    """
    Where the cases come from. Build it with :func:`case_source`.

    :param cases: the cases, when given as a list.
    :param file: the checked file, when given as a path or URL.
    :param fmt: the file's format (:data:`FORMATS`).
    """

    def __init__(self, cases: Sequence[Any] | None = None, file: DataFile | None = None, fmt: str = "") -> None:
        self._list = cases
        self._file = file
        self._format = fmt
        #: Where the cases come from, for messages and the report.
        self.label = "cases" if file is None else api.redact_url(file.location)
        #: The file's path or URL, ``None`` for a list.
        self.location = None if file is None else file.location

    def count(self) -> int:
        """
        Read and check every case (before any request): their number.

        :raises SestekValidationError: an unreadable or empty file, or a bad case (naming the line or index).
        """
        total = sum(1 for _ in self.cases())
        if not total:
            raise SestekValidationError("cases", self.label, "holds no cases; give at least one")
        return total

    def cases(self) -> Iterator[EvalCase]:
        """Every case, checked, in order."""
        for number, (where, raw) in enumerate(self._rows(), start=1):
            yield parse_case(raw, where, number)

    def _rows(self) -> Iterator[tuple[str, Any]]:
        if self._file is None:
            assert self._list is not None
            for i, raw in enumerate(self._list):
                yield f"cases[{i}]", raw
            return
        name = self._file.name
        with self._text() as text:
            if self._format == "jsonl":
                yield from _jsonl_rows(name, text)
            elif self._format == "csv":
                yield from _csv_rows(name, text)
            else:
                yield from _document_rows(name, self._format, text)

    @contextmanager
    def _text(self) -> Iterator[IO[str]]:
        """The file as text (UTF-8, a byte-order mark skipped); a read error names the file."""
        try:
            handle = self._file.open()  # type: ignore[union-attr]
        except (OSError, SestekValidationError) as exc:
            raise SestekValidationError("cases", self.label, f"cannot be read: {exc}") from None
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        try:
            yield text
        except UnicodeDecodeError:
            raise SestekValidationError("cases", self.label, "is not UTF-8 text") from None
        except OSError as exc:
            raise SestekValidationError("cases", self.label, f"cannot be read: {exc}") from None
        finally:
            text.close()


def case_source(cases: Any) -> CaseSource:
    """
    Check the ``cases`` argument (a list of cases or its JSON text, or a file: a path, ``os.PathLike``,
    ``file://`` or object storage URL, or an ``ObjectStoragePath``); for a file, one metadata request checks it
    exists.

    :param cases: the argument as rendered.
    :raises SestekValidationError: an empty list, a web URL, an unknown file format, a missing file.
    """
    if isinstance(cases, str) and cases.lstrip().startswith("["):
        # JSON text: what a template renders a list to (an XCom pulled into ``cases``), as for chat_history.
        try:
            cases = json.loads(cases)
        except ValueError:
            raise SestekValidationError("cases", None, "given as JSON text it must be a list of cases") from None
    if isinstance(cases, Sequence) and not isinstance(cases, str | bytes):
        if not cases:
            raise SestekValidationError("cases", [], "holds no cases; give at least one")
        return CaseSource(cases=cases)
    if isinstance(cases, str) and cases.strip().lower().startswith(("http://", "https://")):
        raise SestekValidationError(
            "cases", api.redact_url(cases.strip()), "is a web URL; give a local path or an object-storage URL"
        )
    if not isinstance(cases, str | os.PathLike) and not hasattr(cases, "protocol"):
        raise SestekValidationError(
            "cases", None, f"must be a list of cases or a file path or URL, not a {type(cases).__name__}"
        )
    file = check_data_file(cases, 0, field_name="cases")
    suffix = os.path.splitext(file.name)[1].lower()
    if suffix not in FORMATS:
        raise SestekValidationError(
            "cases", api.redact_url(file.location), f"must be a {', '.join(FORMATS)} file (the name ending decides)"
        )
    return CaseSource(file=file, fmt=FORMATS[suffix])


def _jsonl_rows(name: str, text: IO[str]) -> Iterator[tuple[str, Any]]:
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"{name} line {line_number}"
        try:
            yield where, json.loads(line)
        except ValueError:
            raise SestekValidationError(where, None, "is not a JSON object (one case per line)") from None


def _csv_rows(name: str, text: IO[str]) -> Iterator[tuple[str, Any]]:
    reader = csv.DictReader(text)
    try:
        columns = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise SestekValidationError(f"{name} line 1", None, f"is not valid CSV ({exc})") from None
    if "query" not in columns:
        raise SestekValidationError(f"{name} line 1", None, "the header row needs a 'query' column")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SestekValidationError(f"{name} line 1", None, f"the header names column {repeated[0]!r} twice")
    unknown = [c for c in columns if c not in CASE_FIELDS]
    if unknown:
        raise SestekValidationError(
            f"{name} line 1", None, f"unknown column {unknown[0]!r}; a case has {', '.join(CASE_FIELDS)}"
        )
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # a cell longer than the csv module's field limit, a stray quote ...
            # line_num counts the lines of the rows read whole: the bad one is the next.
            where = f"{name} line {reader.line_num + 1}"
            raise SestekValidationError(where, None, f"is not valid CSV ({exc})") from None
        where = f"{name} line {reader.line_num}"
        if None in row:  # more cells than the header has columns
            raise SestekValidationError(where, None, f"has more cells than the {len(columns)} columns of the header")
        yield where, {key: _cell(where, key, value) for key, value in row.items() if value not in ("", None)}


def _cell(where: str, column: str, value: str) -> Any:
    """A CSV cell: ``chat_history`` as JSON text, a list column as a JSON list or one string."""
    if column == "chat_history" or (column in _LIST_COLUMNS and value.lstrip().startswith("[")):
        try:
            return json.loads(value)
        except ValueError:
            raise SestekValidationError(f"{where}, field {column}", value[:80], "is not valid JSON") from None
    return value


def _document_rows(name: str, fmt: str, text: IO[str]) -> Iterator[tuple[str, Any]]:
    """A JSON or YAML file: a list of cases, or an object with a ``cases`` list."""
    try:
        if fmt == "json":
            document = json.load(text)
        else:
            import yaml  # PyYAML: a dependency of Airflow itself

            document = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise
    except ValueError as exc:  # json.JSONDecodeError
        raise SestekValidationError(name, None, f"is not valid JSON ({exc})") from None
    except Exception as exc:  # yaml.YAMLError
        if type(exc).__module__.startswith("yaml"):
            raise SestekValidationError(name, None, f"is not valid YAML ({str(exc)[:200]})") from None
        raise
    if isinstance(document, Mapping) and set(document) == {"cases"}:
        document = document["cases"]
    if not isinstance(document, list):
        raise SestekValidationError(name, None, 'must hold a list of cases (or {"cases": [...]})')
    for i, raw in enumerate(document):
        yield f"{name} [{i}]", raw
