"""``SestekQuestionAnsweringOperator``: ask a published Generative-QA model one or more questions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators._inference import ask_published

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

# What one answer's log line quotes at most (about 1,000 characters in all); the XCom is not cut.
_LOGGED_QUESTION = 200
_LOGGED_ANSWER = 500
_LOGGED_SOURCES = 300


class SestekQuestionAnsweringOperator(BaseOperator):
    """
    Ask a published Sestek Generative-QA model one or more questions (uses the inference client).

    Every input is checked before any request, and the answer must hold exactly one result per question.

    :param model_id: the model id. (templated)
    :param query: one question. (templated)
    :param queries: several questions, answered in one call. (templated)
    :param prompt: optional instructions for the model. (templated)
    :param chat_history: a list of ``[user, assistant]`` pairs of ``{"role", "content"}`` messages giving
        context, or its JSON text (what a template renders to). (templated)
    :param use_semantic_cache: let the server answer from its semantic cache.
    :param semantic_cache_threshold: similarity needed for a cache hit, 0-1.
    :param sestek_conn_id: the Sestek connection. (templated)
    :return: one dict per question: ``query``, ``answer`` and ``standalone_question`` (whole, as the server
        sent them), ``sources`` (file names: at most 50, each cut to 300 characters; the log line says how
        many more there were). The log line of an answer is cut to about 1,000 characters.
    :raises SestekValidationError: a bad ``chat_history``, query or threshold, before any request.
    :raises SestekApiError: the server answered a different number of results than questions, or an answer
        whose ``docs`` is not a list of documents with a text ``source``.
    """

    template_fields: Sequence[str] = ("model_id", "query", "queries", "prompt", "chat_history", "sestek_conn_id")
    template_fields_renderers = {"queries": "json", "chat_history": "json"}
    ui_color = "#dcfce7"

    def __init__(
        self,
        *,
        model_id: str,
        query: str | None = None,
        queries: Sequence[str] | None = None,
        prompt: str | None = None,
        chat_history: Sequence[Any] | str | None = None,
        use_semantic_cache: bool | None = None,
        semantic_cache_threshold: float | None = None,
        sestek_conn_id: str = SestekHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.query = query
        self.queries = queries
        self.prompt = prompt
        self.chat_history = chat_history
        self.use_semantic_cache = use_semantic_cache
        self.semantic_cache_threshold = semantic_cache_threshold
        self.sestek_conn_id = sestek_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Check the inputs, ask, check that every question got its answer, log and return the answers."""
        api.validate_model_id(self.model_id)
        questions = api.as_list(self.query) + api.as_list(self.queries)
        if not questions:
            raise SestekValidationError("query", None, "give query or queries")
        # The whole body is built (and so checked) here, before the hook fetches a token.
        api.inference_body(
            questions, self.prompt, self.chat_history, self.use_semantic_cache, self.semantic_cache_threshold
        )
        results = ask_published(
            SestekHook(self.sestek_conn_id),
            self.model_id,
            questions,
            prompt=self.prompt,
            chat_history=api.chat_history_pairs(self.chat_history),
            use_semantic_cache=self.use_semantic_cache,
            semantic_cache_threshold=self.semantic_cache_threshold,
        )
        answers = []
        for question, result in zip(questions, results, strict=True):
            sources, more = api.answer_sources(result)
            answer = {
                "query": question,
                "answer": result.get("answer"),
                "standalone_question": result.get("standalone_question"),
                "sources": sources,
            }
            shown = api.excerpt(", ".join(sources), _LOGGED_SOURCES) + (f" ({more} more)" if more else "")
            # An answer without documents (nothing matched) gets no empty "(sources: )" tail. The log line is
            # bounded (the XCom keeps the whole answer): a server's answer may be of any length.
            self.log.info(
                "Q: %s\nA: %s%s",
                api.excerpt(question, _LOGGED_QUESTION),
                api.excerpt(answer["answer"], _LOGGED_ANSWER),
                f" (sources: {shown})" if shown else "",
            )
            answers.append(answer)
        return answers
