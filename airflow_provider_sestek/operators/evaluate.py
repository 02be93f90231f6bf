"""``SestekEvaluateModelOperator``: a quality gate that asks a published model its golden set."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_sestek import api
from airflow_provider_sestek.api.evaluation import (
    CaseResult,
    EvalCase,
    Scoreboard,
    grade,
    validate_batch_size,
    validate_pass_rate,
)
from airflow_provider_sestek.exceptions import SestekEvaluationFailed, SestekValidationError
from airflow_provider_sestek.hooks.cases import case_source
from airflow_provider_sestek.hooks.report import check_report_path
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators._assets import emit_model_asset, with_model_alias
from airflow_provider_sestek.operators._inference import ask_published
from airflow_provider_sestek.operators._lineage import evaluation_lineage

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Progress lines in the task log over a whole evaluation (one per batch when there are fewer batches).
_PROGRESS_LINES = 10


class SestekEvaluateModelOperator(BaseOperator):
    """
    Ask a published model every case of a golden set, check each answer, and fail the task when fewer than
    ``min_pass_rate`` of the cases pass: a gate between training a model and relying on it.

    A case is ``{"query": ..., "id": ..., "chat_history": [...], <checks>}``; the checks (each a string or a
    list of strings; text compared case-insensitively, white space folded):

    ================== ============================================================================
    ``expect_all``      every string appears in the answer
    ``expect_any``      at least one appears
    ``expect_regex``    every regular expression matches the answer (``re.search``; ``(?i)`` for case)
    ``expect_sources``  every document name is among the answer's ``docs`` sources
    ``forbid``          none appears
    ================== ============================================================================

    A case without checks passes when the answer is not empty. Every case is read and checked before the
    first request. On success, with ``emit_model_asset``, the model's asset event (the one
    ``SestekTrainOperator`` emits, see :func:`~airflow_provider_sestek.assets.model_asset`) is emitted with the
    summary and ``min_pass_rate`` as its ``extra``: train with ``emit_model_asset=False`` and the DAGs
    scheduled on the model see only models that passed.

    :param model_id: the model to evaluate. (templated)
    :param cases: a list of cases (or its JSON text, what a template renders a list to), or a
        ``.jsonl``/``.ndjson``, ``.json``, ``.yaml``/``.yml`` or ``.csv`` file: a local path or an
        object-storage URL or ``ObjectStoragePath``, read like ``data_files``. JSONL and CSV
        are streamed; a JSON or YAML file holds a list (or ``{"cases": [...]}``); a CSV has a header row, a list
        check as JSON text or one string, ``chat_history`` as JSON text. (templated)
    :param min_pass_rate: the share of cases that must pass, 0 to 1.
    :param batch_size: cases per inference request (1 to 100); each request has the hook's retry rules.
    :param prompt: optional instructions sent with every request. (templated)
    :param use_semantic_cache: let the server answer from its semantic cache (``False``: an evaluation
        measures the model, not the cache).
    :param report_path: where to write the full JSON report (every case, answer, sources, checks, latency),
        a local path or an object-storage URL; written also when the gate fails. (templated)
    :param emit_model_asset: on success, emit the model's asset event with the summary.
    :param sestek_conn_id: the Sestek connection. (templated)
    :return: ``{"model_id", "cases", "passed", "failed", "pass_rate", "source_hit_rate", "latency_p50_ms",
        "latency_p95_ms", "report_path"}``; ``source_hit_rate`` is over the cases with ``expect_sources``
        (``None`` when none has), a latency is the time of the request that answered the case.
    :raises SestekValidationError: bad arguments or a bad case (naming the file, line or index and the field),
        before any request.
    :raises SestekModelNotPublished: the model has no published endpoint.
    :raises SestekEvaluationFailed: the pass rate is below ``min_pass_rate`` (the failing cases listed).
    """

    template_fields: Sequence[str] = ("model_id", "cases", "prompt", "report_path", "sestek_conn_id")
    template_fields_renderers = {"cases": "json"}
    ui_color = "#fef3c7"

    def __init__(
        self,
        *,
        model_id: str,
        cases: Any,
        min_pass_rate: float = 1.0,
        batch_size: int = 20,
        prompt: str | None = None,
        use_semantic_cache: bool = False,
        report_path: Any = None,
        emit_model_asset: bool = True,
        sestek_conn_id: str = SestekHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        if emit_model_asset:
            kwargs["outlets"] = with_model_alias(kwargs.get("outlets"))
        super().__init__(**kwargs)
        self.model_id = model_id
        self.cases = cases
        self.min_pass_rate = min_pass_rate
        self.batch_size = batch_size
        self.prompt = prompt
        self.use_semantic_cache = use_semantic_cache
        self.report_path = report_path
        self.emit_model_asset = emit_model_asset
        self.sestek_conn_id = sestek_conn_id
        #: ``check -> [passed, failed]`` of the last run, for OpenLineage.
        self._by_check: dict[str, list[int]] = {}

    def execute(self, context: Context) -> dict[str, Any]:
        """Check every argument and case, ask the cases in batches, grade, report, gate, emit."""
        api.validate_model_id(self.model_id)
        min_pass_rate = validate_pass_rate(self.min_pass_rate)
        batch_size = validate_batch_size(self.batch_size)
        api.validate_text(self.prompt, "prompt")
        api.validate_flag(self.use_semantic_cache, "use_semantic_cache")
        api.validate_flag(self.emit_model_asset, "emit_model_asset")
        writer = check_report_path(self.report_path)
        source = case_source(self.cases)
        if writer is not None and source.location is not None and _same_file(writer.location, source.location):
            raise SestekValidationError("report_path", writer.shown, "is the cases file; the report would replace it")
        total = source.count()
        hook = SestekHook(self.sestek_conn_id)
        self.log.info(
            "Evaluating model %s on %d cases from %s, %d per request", self.model_id, total, source.label, batch_size
        )
        board = Scoreboard()
        if writer is not None:
            writer.open({"model_id": self.model_id, "cases_from": source.label, "min_pass_rate": min_pass_rate})
        try:
            every = max(1, -(-total // batch_size) // _PROGRESS_LINES)
            for n, batch in enumerate(_batches(source.cases(), batch_size), start=1):
                for result in self._ask(hook, batch, board):
                    board.add(result)
                    if writer is not None:
                        writer.write(result.to_report())
                if n % every == 0 or board.cases == total:
                    self.log.info(
                        "Evaluated %d of %d cases: %d passed (%.1f%%)",
                        board.cases,
                        total,
                        board.passed,
                        100 * board.pass_rate,
                    )
            summary = board.summary(self.model_id, writer.shown if writer is not None else None)
            if writer is not None:
                writer.finish(summary)
        finally:
            if writer is not None:
                writer.discard()
        self._by_check = board.by_check
        self._log_end(board, summary, min_pass_rate)
        if summary["pass_rate"] < min_pass_rate:
            raise SestekEvaluationFailed(
                self.model_id, summary, min_pass_rate, [f.failure_line() for f in board.failures]
            )
        if self.emit_model_asset:
            # Flat, like the train task's: Airflow 2.11 hashes an alias event's extra and fails on a nested dict.
            extra = {**summary, "min_pass_rate": min_pass_rate}
            emit_model_asset(context, hook.config, self.model_id, extra, self.log, sestek_conn_id=self.sestek_conn_id)
        return summary

    def _ask(self, hook: SestekHook, batch: list[EvalCase], board: Scoreboard) -> Iterator[CaseResult]:
        """One inference request for the batch; its cases graded."""
        started = time.monotonic()
        results = ask_published(
            hook,
            self.model_id,
            [case.query for case in batch],
            prompt=self.prompt,
            use_semantic_cache=self.use_semantic_cache,
            chat_histories=[case.chat_history for case in batch],
        )
        latency_ms = (time.monotonic() - started) * 1000
        board.add_request(latency_ms, len(batch))
        for case, result in zip(batch, results, strict=True):
            sources, _ = api.answer_sources(result)
            answer = result.get("answer")
            text = answer if isinstance(answer, str) else ""
            yield CaseResult(case, text, sources, grade(case, text, sources), latency_ms)

    def _log_end(self, board: Scoreboard, summary: dict[str, Any], min_pass_rate: float) -> None:
        """The failures as a table, then the summary line: the last lines of the task log."""
        if board.failures:
            shown = len(board.failures)
            more = f"; the first {shown} shown, the report has all" if summary["failed"] > shown else ""
            rows = "\n".join(f"  {f.failure_line()}" for f in board.failures)
            self.log.info(
                "Failing cases (%d%s):\n  id | query | failed checks | answer (excerpt)\n%s",
                summary["failed"],
                more,
                rows,
            )
        hit_rate = summary["source_hit_rate"]
        self.log.info(
            "Model %s: %d of %d cases passed (%.1f%%; required %.1f%%)%s, latency p50 %s ms, p95 %s ms%s",
            self.model_id,
            summary["passed"],
            summary["cases"],
            100 * summary["pass_rate"],
            100 * min_pass_rate,
            "" if hit_rate is None else f", sources found {100 * hit_rate:.1f}%",
            summary["latency_p50_ms"],
            summary["latency_p95_ms"],
            f"; report {summary['report_path']}" if summary["report_path"] else "",
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage: the model as the input, with one data-quality assertion per check kind (passed when every
        case passed it); the cases file an input, the report an output.

        :param task_instance: the finished task instance (unused).
        """
        return self._lineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """
        OpenLineage of a failed gate: the same assertions, the failed ones ``success=False``.

        :param task_instance: the failed task instance (unused).
        """
        return self._lineage()

    def _lineage(self) -> Any:
        cases = None if self.cases is None or isinstance(self.cases, list | tuple) else str(self.cases)
        report = None if not self.report_path else str(self.report_path)
        cfg = SestekHook(self.sestek_conn_id).config
        return evaluation_lineage(cfg, self.model_id, self._by_check, cases, report)


def _same_file(report: str, cases: str) -> bool:
    """Whether the report would be written over the cases file (the same local file, or the same URL)."""
    if "://" in cases or "://" in report:
        return api.redact_url(report) == api.redact_url(cases)
    return os.path.realpath(os.path.expanduser(report)) == os.path.realpath(os.path.expanduser(cases))


def _batches(cases: Iterator[EvalCase], size: int) -> Iterator[list[EvalCase]]:
    while batch := list(islice(cases, size)):
        yield batch
