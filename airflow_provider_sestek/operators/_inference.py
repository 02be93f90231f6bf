"""Asking a published model from an operator: a model that is not published says what to do about it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekError, SestekModelNotPublished
from airflow_provider_sestek.hooks.sestek import SestekHook


def ask_published(hook: SestekHook, model_id: str, questions: Sequence[str], **kwargs: Any) -> list[dict[str, Any]]:
    """
    :meth:`SestekHook.ask`, checked: exactly one result per question, and a model that is not published named
    with its training progress and the way to publish it.

    :param hook: the hook.
    :param model_id: the model.
    :param questions: the questions.
    :param kwargs: the other arguments of :meth:`SestekHook.ask`.
    :raises SestekModelNotPublished: the model has no published endpoint (its progress in the message).
    :raises SestekApiError: the server answered a different number of results than questions.
    """
    try:
        response = hook.ask(model_id, list(questions), **kwargs)
    except SestekModelNotPublished as exc:
        try:
            progress = hook.get_training_progress(model_id)
            state, published = progress.describe(), progress.is_published
        except SestekError:
            state, published = "unknown", False
        if published:  # the progress says Running: the pod is starting, idle or down, not untrained
            message = (
                f"model {model_id!r} is published (training progress: {state}) but its endpoint did not answer "
                f"(HTTP {exc.status}); retry later. Server said: {exc.message}"
            )
        else:
            message = (
                f"model {model_id!r} is not published (training progress: {state}); train it with "
                f"SestekTrainOperator(wait_for_inference=True) first. Server said: {exc.message}"
            )
        raise SestekModelNotPublished(
            method=exc.method, endpoint=exc.endpoint, status=exc.status, message=message
        ) from exc
    results: list[dict[str, Any]] = response["result"]
    cfg = hook.config
    api.check_inference_results(len(questions), results, api.inference_url(cfg.base_url, cfg.tenant or "", model_id))
    return results
