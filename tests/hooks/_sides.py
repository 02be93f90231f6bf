"""The same hook call through both transports, for tests that check the two agree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_sestek.hooks.sestek import SestekHook

Call = Callable[..., Any]


def both_sides(defaults: Mapping[str, Any]) -> tuple[dict[str, Call], dict[str, Call]]:
    """
    ``(PROGRESS, TOKEN)``: ``{"sync": ..., "async": ...}`` callers of a progress poll and a token fetch, each
    on a fresh hook built with ``defaults`` (overridable per call).

    :param defaults: hook arguments, e.g. short retry delays.
    """

    def hook(kwargs: Mapping[str, Any]) -> SestekHook:
        return SestekHook(**{**defaults, **kwargs})

    def sync_progress(model_id: str = "m", **kwargs: Any) -> Any:
        return hook(kwargs).get_training_progress(model_id)

    def async_progress(model_id: str = "m", **kwargs: Any) -> Any:
        return asyncio.run(hook(kwargs).aget_training_progress(model_id))

    def sync_token(**kwargs: Any) -> str:
        return hook(kwargs).get_token()

    def async_token(**kwargs: Any) -> str:
        return asyncio.run(hook(kwargs).aget_token())

    return {"sync": sync_progress, "async": async_progress}, {"sync": sync_token, "async": async_token}


#: Short backoff and a single retry: a fault answered to every request fails the call in milliseconds.
ONE_QUICK_RETRY = {"retry_delay": 0.01, "retry_max_delay": 0.05, "retry_limit": 1}

#: Progress polls and token fetches on hooks built with :data:`ONE_QUICK_RETRY`.
PROGRESS, TOKEN = both_sides(ONE_QUICK_RETRY)
