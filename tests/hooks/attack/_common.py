"""Shared helpers of the attack tests."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_sestek.hooks.sestek import SestekHook

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05, "retry_limit": 1}


def sync_progress(model_id: str = "m", **kwargs: Any) -> Any:
    return SestekHook(**{**FAST, **kwargs}).get_training_progress(model_id)


def async_progress(model_id: str = "m", **kwargs: Any) -> Any:
    return asyncio.run(SestekHook(**{**FAST, **kwargs}).aget_training_progress(model_id))


def sync_token(**kwargs: Any) -> str:
    return SestekHook(**{**FAST, **kwargs}).get_token()


def async_token(**kwargs: Any) -> str:
    return asyncio.run(SestekHook(**{**FAST, **kwargs}).aget_token())


PROGRESS = {"sync": sync_progress, "async": async_progress}
TOKEN = {"sync": sync_token, "async": async_token}
