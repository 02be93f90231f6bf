"""
The watcher's arguments are checked when it is built: one of the wrong type or value is a
``SestekValidationError`` naming the field, never a watcher that misbehaves in the triggerer.

``fire_on_start="false"`` (a string from a template or a config file) went through ``bool()`` and became
``True``: the watcher fired for every model already published, the opposite of what was asked. An empty or
``None`` ``sestek_conn_id`` was accepted and serialized, and failed only in the triggerer, at every poll. A
``poll_interval`` of NaN (``nan <= 0`` is false), infinity or so large that ``timedelta(seconds=...)``
overflows built a watcher that ran ``asyncio.sleep(nan)`` in the triggerer.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from tests.triggers.test_published import needs_airflow_3, trigger

BAD_POLL_INTERVALS = [math.nan, math.inf, -math.inf, 1e14, 1e300]
BAD_POLL_INTERVAL_IDS = ["nan", "inf", "-inf", "1e14", "1e300"]


@needs_airflow_3
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fire_on_start": "false"}, "fire_on_start"),
        ({"fire_on_start": 1}, "fire_on_start"),
        ({"fire_on_start": None}, "fire_on_start"),
        ({"sestek_conn_id": None}, "sestek_conn_id"),
        ({"sestek_conn_id": ""}, "sestek_conn_id"),
        ({"sestek_conn_id": 7}, "sestek_conn_id"),
    ],
    ids=["fire-str", "fire-int", "fire-none", "conn-none", "conn-empty", "conn-int"],
)
def test_refuses_wrongly_typed_arguments(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(SestekValidationError) as info:
        trigger("faq-bot", **kwargs)
    assert info.value.field == field


@needs_airflow_3
def test_booleans_still_accepted() -> None:
    assert trigger("faq-bot", fire_on_start=True).serialize()[1]["fire_on_start"] is True
    assert trigger("faq-bot", fire_on_start=False).serialize()[1]["fire_on_start"] is False


@needs_airflow_3
@pytest.mark.parametrize("value", BAD_POLL_INTERVALS, ids=BAD_POLL_INTERVAL_IDS)
def test_watcher_refuses_non_finite_or_huge_poll_interval(value: float) -> None:
    from airflow_provider_sestek.triggers.published import SestekModelPublishedTrigger

    with pytest.raises(SestekValidationError) as info:
        SestekModelPublishedTrigger("faq-bot", poll_interval=value)
    assert info.value.field == "poll_interval"
