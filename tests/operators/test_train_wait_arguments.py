"""
``SestekTrainOperator`` refuses a ``timeout`` or a ``poll_interval`` that is not a finite, sane number of seconds
with a ``SestekValidationError`` naming the field, before any call to Sestek.

``seconds()`` took NaN (``nan < 0`` is false), infinity and numbers beyond what a ``timedelta`` holds: the
training was submitted, then the deferral's backstop ``timedelta(seconds=...)`` raised a bare ``OverflowError``
(or a NaN deadline never compared true). A bad ``poll_interval`` likewise let the training be submitted before a
bare ``ValueError`` (``time.sleep(nan)``) or ``OverflowError`` (the deferral timeout).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.testing import SestekEmulator
from tests.operators.test_train import train


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e300], ids=["nan", "inf", "1e300"])
def test_train_refuses_non_finite_or_huge_timeout_before_any_call(
    sestek_conn: SestekEmulator, faq: str, value: float
) -> None:
    op: Any = train(faq, timeout=value, deferrable=True)
    with pytest.raises(SestekValidationError) as info:
        op.execute({})
    assert info.value.field == "timeout"
    assert list(sestek_conn.requests) == []


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 1e14, 1e300], ids=["nan", "inf", "-inf", "1e14", "1e300"]
)
def test_train_refuses_non_finite_or_huge_poll_interval_before_any_call(
    sestek_conn: SestekEmulator, faq: str, value: float
) -> None:
    op: Any = train(faq, poll_interval=value, timeout=3600)
    with pytest.raises(SestekValidationError) as info:
        op.execute({})
    assert info.value.field == "poll_interval"
    assert list(sestek_conn.requests) == []
