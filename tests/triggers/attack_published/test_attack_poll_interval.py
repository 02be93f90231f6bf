"""
Attack: a poll interval that is not a finite, sane number of seconds.

``check_poll_interval`` took NaN (``nan <= 0`` is false), infinity and values so large that
``timedelta(seconds=...)`` overflows: the watcher trigger was built with them (``asyncio.sleep(nan)`` in the
triggerer), and the training operator submitted the training before failing with a bare ``ValueError``
(``time.sleep(nan)``) or ``OverflowError`` (the deferral timeout). Both must refuse them up front with a
``SestekValidationError`` naming the field, before any call to Sestek.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.testing import SestekEmulator
from tests.operators.test_train import train

AIRFLOW_3 = int(__import__("airflow").__version__.split(".")[0]) >= 3
BAD = [math.nan, math.inf, -math.inf, 1e14, 1e300]
IDS = ["nan", "inf", "-inf", "1e14", "1e300"]


@pytest.mark.skipif(not AIRFLOW_3, reason="the watcher trigger needs Airflow 3")
@pytest.mark.parametrize("value", BAD, ids=IDS)
def test_watcher_refuses_non_finite_or_huge_poll_interval(value: float) -> None:
    from airflow_provider_sestek.triggers.published import SestekModelPublishedTrigger

    with pytest.raises(SestekValidationError) as info:
        SestekModelPublishedTrigger("faq-bot", poll_interval=value)
    assert info.value.field == "poll_interval"


@pytest.mark.parametrize("value", BAD, ids=IDS)
def test_train_refuses_non_finite_or_huge_poll_interval_before_any_call(
    sestek_conn: SestekEmulator, faq: str, value: float
) -> None:
    op: Any = train(faq, poll_interval=value, timeout=3600)
    with pytest.raises(SestekValidationError) as info:
        op.execute({})
    assert info.value.field == "poll_interval"
    assert list(sestek_conn.requests) == []
