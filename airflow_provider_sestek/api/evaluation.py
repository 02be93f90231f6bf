"""
The rules of a golden-set evaluation, with no I/O: what a case is, how an answer is checked, what is counted.

A case is a question with checks on its answer (:data:`CHECKS`); text checks compare case-insensitively with
runs of white space folded to one space, so ``"9 to 17"`` matches ``"From 9  to 17"``. Reading the cases
(lists, files, object storage) lives in :mod:`airflow_provider_sestek.hooks.cases`, asking in the operator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

from airflow_provider_sestek.api.validation import chat_history_pairs
from airflow_provider_sestek.exceptions import SestekValidationError

#: The checks a case may carry, in the order they are applied and reported.
CHECKS = ("expect_all", "expect_any", "expect_regex", "expect_sources", "forbid")
#: The check of a case that carries none: the model gave a non-empty answer.
ANSWERED = "answered"
#: Every field a case may have; any other is refused (a typo would silently check nothing).
CASE_FIELDS = ("id", "query", "chat_history", *CHECKS)
#: The most inputs one inference request carries (the endpoint documents no limit; this bounds a request).
MAX_BATCH_SIZE = 100
#: Characters of an answer quoted in a failure line.
ANSWER_EXCERPT = 120
#: Longest time, in seconds, one ``expect_regex`` pattern may take on one answer: a catastrophic pattern
#: (``(a+)+$``) on an answer the server chose would otherwise hold the task for hours.
REGEX_TIMEOUT = 1.0


def fold(text: str) -> str:
    """``text`` as the text checks compare it: case-folded, white space runs as one space."""
    return " ".join(text.casefold().split())


@dataclass(frozen=True)
class EvalCase:
    """
    One validated case.

    :param number: its position among the cases, from 1.
    :param where: where it was read, for messages (``cases[3]``, ``golden.jsonl line 4``).
    :param id: its ``id``, or its number as text.
    :param query: the question.
    :param chat_history: ``[user, assistant]`` pairs sent with the question.
    :param checks: ``(check, values)`` in :data:`CHECKS` order.
    :param patterns: the ``expect_regex`` values, compiled.
    """

    number: int
    where: str
    id: str
    query: str
    chat_history: list[list[dict[str, str]]] = field(default_factory=list)
    checks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    patterns: tuple[regex.Pattern[str], ...] = ()


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where.endswith("]") else f"{where}, field {name}"


def _strings(where: str, name: str, value: Any) -> tuple[str, ...]:
    """A check's values: one non-empty string or a non-empty list of them."""
    values = [value] if isinstance(value, str) else value
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence) or not values:
        raise SestekValidationError(
            _field(where, name), value, "must be a non-empty string or a non-empty list of strings"
        )
    for i, item in enumerate(values):
        if not isinstance(item, str) or not item.strip():
            raise SestekValidationError(_field(where, f"{name}[{i}]"), item, "must be a non-empty string")
    return tuple(values)


def parse_case(raw: Any, where: str, number: int) -> EvalCase:
    """
    Check one case and return it.

    :param raw: the case as read (a mapping).
    :param where: where it was read, for messages.
    :param number: its position, from 1.
    :raises SestekValidationError: naming where, the field and the rule.
    """
    if not isinstance(raw, Mapping):
        raise SestekValidationError(where, None, f"a case must be an object with a 'query', not a {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in CASE_FIELDS)
    if unknown:
        raise SestekValidationError(
            _field(where, unknown[0]), None, f"unknown field; a case has {', '.join(CASE_FIELDS)}"
        )
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SestekValidationError(_field(where, "query"), query, "is required: a non-empty question")
    case_id = raw.get("id")
    if case_id is None or case_id == "":
        case_id = str(number)
    elif isinstance(case_id, bool) or not isinstance(case_id, str | int):
        raise SestekValidationError(_field(where, "id"), case_id, "must be a string or an integer")
    try:
        history = chat_history_pairs(raw.get("chat_history"))
    except SestekValidationError as exc:
        raise SestekValidationError(_field(where, exc.field), exc.value, exc.rule) from None
    checks = tuple((name, _strings(where, name, raw[name])) for name in CHECKS if raw.get(name) is not None)
    patterns = []
    for name, values in checks:
        if name != "expect_regex":
            continue
        for i, pattern in enumerate(values):
            try:
                patterns.append(regex.compile(pattern))
            except regex.error as exc:
                raise SestekValidationError(
                    _field(where, f"expect_regex[{i}]"), pattern, f"is not a valid regular expression ({exc})"
                ) from None
    return EvalCase(number, where, str(case_id), query, history, checks, tuple(patterns))


@dataclass(frozen=True)
class CheckResult:
    """
    The outcome of one check on one answer.

    :param check: the check (:data:`CHECKS` or :data:`ANSWERED`).
    :param passed: whether the answer passed it.
    :param detail: what failed, in words (``""`` when passed).
    """

    check: str
    passed: bool
    detail: str = ""


def grade(case: EvalCase, answer: Any, sources: Sequence[str]) -> tuple[CheckResult, ...]:
    """
    Apply a case's checks to the model's answer.

    :param case: the case.
    :param answer: the answer text (anything else counts as an empty answer).
    :param sources: the ``source`` names of the answer's documents.
    """
    text = answer if isinstance(answer, str) else ""
    folded = fold(text)
    # An empty answer fails every case (a case with only ``forbid`` would pass it otherwise).
    results = [] if text.strip() else [CheckResult(ANSWERED, False, "the answer is empty")]
    if not case.checks:
        return tuple(results) or (CheckResult(ANSWERED, True),)
    for name, values in case.checks:
        if name == "expect_all":
            missing = [v for v in values if fold(v) not in folded]
            results.append(CheckResult(name, not missing, f"missing {_quoted(missing)}" if missing else ""))
        elif name == "expect_any":
            hit = any(fold(v) in folded for v in values)
            results.append(CheckResult(name, hit, "" if hit else f"none of {_quoted(values)}"))
        elif name == "expect_regex":
            unmatched, slow = [], []
            for pattern in case.patterns:
                try:
                    if not pattern.search(text, timeout=REGEX_TIMEOUT):
                        unmatched.append(pattern.pattern)
                except TimeoutError:
                    slow.append(pattern.pattern)
            detail = f"no match for {_quoted(unmatched)}" if unmatched else ""
            if slow:
                detail += ("; " if detail else "") + f"gave up after {REGEX_TIMEOUT:g} s on {_quoted(slow)}"
            results.append(CheckResult(name, not (unmatched or slow), detail))
        elif name == "expect_sources":
            absent = [v for v in values if v not in sources]
            results.append(CheckResult(name, not absent, f"sources lack {_quoted(absent)}" if absent else ""))
        else:  # forbid
            found = [v for v in values if fold(v) in folded]
            results.append(CheckResult(name, not found, f"contains {_quoted(found)}" if found else ""))
    return tuple(results)


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(repr(v[:60]) for v in values)


@dataclass(frozen=True)
class CaseResult:
    """
    One case, its answer and its checks.

    :param case: the case.
    :param answer: the answer text.
    :param sources: the answer's document names.
    :param checks: the check results.
    :param latency_ms: the time of the inference request that answered it.
    """

    case: EvalCase
    answer: str
    sources: list[str]
    checks: tuple[CheckResult, ...]
    latency_ms: float

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return all(c.passed for c in self.checks)

    def to_report(self) -> dict[str, Any]:
        """The case as the JSON report holds it."""
        return {
            "id": self.case.id,
            "query": self.case.query,
            "passed": self.passed,
            "answer": self.answer,
            "sources": self.sources,
            "checks": [{"check": c.check, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "latency_ms": round(self.latency_ms, 3),
        }

    def failure_line(self) -> str:
        """``id | query | failed checks | answer excerpt``, one line."""
        failed = "; ".join(f"{c.check}: {c.detail}" for c in self.checks if not c.passed)
        answer = " ".join(self.answer.split())
        shown = answer if len(answer) <= ANSWER_EXCERPT else answer[: ANSWER_EXCERPT - 3] + "..."
        query = " ".join(self.case.query.split())[:80]
        return f"{self.case.id} | {query} | {failed} | answer: {shown!r}"


def validate_pass_rate(value: Any) -> float:
    """
    ``min_pass_rate``: a number from 0 to 1.

    :param value: the argument.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise SestekValidationError("min_pass_rate", value, "must be a number from 0 to 1 (1.0: every case passes)")
    return float(value)


def validate_batch_size(value: Any) -> int:
    """
    ``batch_size``: cases per inference request, 1 to :data:`MAX_BATCH_SIZE`.

    :param value: the argument.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH_SIZE:
        raise SestekValidationError("batch_size", value, f"must be an integer from 1 to {MAX_BATCH_SIZE}")
    return value


class Scoreboard:
    """
    What an evaluation counts, in memory that does not grow with the cases: totals, per-check totals, the
    latency of each request (weighted by its cases) and the first :attr:`keep_failures` failures.

    :param keep_failures: failures kept for the message and the log table (the report has all).
    """

    def __init__(self, keep_failures: int = 20) -> None:
        self.keep_failures = keep_failures
        self.cases = 0
        self.passed = 0
        self.with_sources = 0
        self.source_hits = 0
        #: ``check -> [passed, failed]`` over every case.
        self.by_check: dict[str, list[int]] = {}
        self.failures: list[CaseResult] = []
        self._latencies: list[tuple[float, int]] = []

    def add_request(self, latency_ms: float, cases: int) -> None:
        """Record one inference request that answered ``cases`` cases."""
        self._latencies.append((latency_ms, cases))

    def add(self, result: CaseResult) -> None:
        """Count one graded case."""
        self.cases += 1
        if result.passed:
            self.passed += 1
        elif len(self.failures) < self.keep_failures:
            self.failures.append(result)
        for check in result.checks:
            self.by_check.setdefault(check.check, [0, 0])[0 if check.passed else 1] += 1
            if check.check == "expect_sources":
                self.with_sources += 1
                self.source_hits += check.passed

    @property
    def pass_rate(self) -> float:
        """Passed cases over all cases (0 when there are none)."""
        return self.passed / self.cases if self.cases else 0.0

    def percentile(self, q: float) -> float | None:
        """The ``q`` (0-1) nearest-rank latency percentile in milliseconds, over cases; ``None`` if none."""
        total = sum(n for _, n in self._latencies)
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for latency, n in sorted(self._latencies):
            seen += n
            if seen >= rank:
                return round(latency, 3)
        return round(max(latency for latency, _ in self._latencies), 3)  # pragma: no cover - rank <= total

    def summary(self, model_id: str, report_path: str | None) -> dict[str, Any]:
        """
        The task's XCom: counts, rates and latencies (``source_hit_rate`` is over the cases that have
        ``expect_sources``, ``None`` when none has).

        :param model_id: the model evaluated.
        :param report_path: where the full report was written, or ``None``.
        """
        return {
            "model_id": model_id,
            "cases": self.cases,
            "passed": self.passed,
            "failed": self.cases - self.passed,
            "pass_rate": round(self.pass_rate, 6),
            "source_hit_rate": round(self.source_hits / self.with_sources, 6) if self.with_sources else None,
            "latency_p50_ms": self.percentile(0.5),
            "latency_p95_ms": self.percentile(0.95),
            "report_path": report_path,
        }
