"""
Published-model inference: ``POST /published/{tenant}-{modelId}/v1/text/question-answering/inference``,
answered from the text the deployed training uploaded (see :mod:`._retrieval`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ._model import RecordedRequest
from ._retrieval import NO_ANSWER
from ._state import EmulatorState
from ._wire import TEXT, UNAVAILABLE, Reply, abp_error, abp_validation, json_reply, problem

__all__ = ["answer"]


async def answer(state: EmulatorState, request: web.Request, record: RecordedRequest, body: bytes) -> Reply:
    """
    Answer an inference call whose token was already checked.

    :param state: the emulator's state.
    :param request: the request.
    :param record: its record (``json`` is filled in).
    :param body: the request body.
    """
    segment = request.match_info["segment"]
    model_id = record.model_id
    not_found = abp_error(404, f"Published model {segment} not found")
    if model_id is None:
        return not_found
    published = state.published(model_id)
    if published is None or (published.deployed is None and not published.trained):
        return not_found
    deployed = published.deployed
    if deployed is None:
        return Reply(503, UNAVAILABLE.encode("utf-8"), TEXT)
    media_type = request.content_type
    if media_type != "application/json" and not media_type.endswith("+json"):
        return problem(415)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes (ASP.NET caps depth too)
        return abp_validation([("The request body is not valid JSON.", [])])
    record.json = state.redactor.json(payload)
    errors = _validate(payload)
    if errors:
        return abp_validation(errors)
    started = time.perf_counter()
    answers = state.answers
    index = answers.ready_index(model_id, deployed)
    if index is None:
        # Building it reads files and may wait for data-URL fetches: not on the loop.
        index = await asyncio.get_running_loop().run_in_executor(None, answers.index, model_id, deployed)
    results = []
    for item in payload["inputs"]:
        query = item["query"]
        use_cache = bool(item.get("use_semantic_cache", False))
        key = " ".join(query.casefold().split())
        if use_cache:
            cached = answers.cached(model_id, deployed, key)
            if cached is not None:
                results.append({**cached[1], "cache_hit": {"query": cached[0], "score": 1.0}})
                continue
        hits = index.search(query, 3)
        result = {
            "answer": hits[0][0].answer if hits else NO_ANSWER,
            "standalone_question": query,
            "docs": [{"source": p.source, "score": score, "content": p.content} for p, score in hits],
            "logs": {
                "model": segment,
                "generation": deployed.number,
                "retriever": "tf-idf",
                "passages_indexed": len(index.passages),
                "chat_history_turns": len(item.get("chat_history") or []),
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
            },
            "cache_hit": None,
        }
        if use_cache:
            answers.remember(model_id, deployed, key, query, result)
        results.append(result)
    return json_reply(200, {"result": results})


def _validate(payload: Any) -> list[tuple[str, list[str]]]:
    if not isinstance(payload, dict):
        return [("The request body must be a JSON object.", [])]
    errors: list[tuple[str, list[str]]] = []
    prompt = payload.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        errors.append(("The prompt field must be a string.", ["prompt"]))
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        errors.append(("The inputs field is required and must be a non-empty list.", ["inputs"]))
        return errors
    for index, item in enumerate(inputs):
        where = f"inputs[{index}]"
        if not isinstance(item, dict):
            errors.append((f"{where} must be an object.", [where]))
            continue
        query = item.get("query")
        if not isinstance(query, str) or not query.strip():
            errors.append((f"The query field of {where} is required.", [f"{where}.query"]))
        history = item.get("chat_history")
        if history is not None and not isinstance(history, list):
            errors.append((f"The chat_history field of {where} must be a list.", [f"{where}.chat_history"]))
        cache = item.get("use_semantic_cache")
        if cache is not None and not isinstance(cache, bool):
            message = f"The use_semantic_cache field of {where} must be a boolean."
            errors.append((message, [f"{where}.use_semantic_cache"]))
        threshold = item.get("semantic_cache_threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1
        ):
            message = f"The semantic_cache_threshold field of {where} must be a number between 0 and 1."
            errors.append((message, [f"{where}.semantic_cache_threshold"]))
    return errors
