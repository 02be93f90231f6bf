"""
Attack: a ``timeout`` that is not a finite number of seconds on ``SestekTrainOperator``.

``seconds()`` took NaN (``nan < 0`` is false), infinity and numbers beyond what a ``timedelta`` holds: the
training was submitted, then the deferral's backstop ``timedelta(seconds=...)`` raised a bare
``OverflowError`` (or a NaN deadline never compared true). Bad input must be refused with a
``SestekValidationError`` naming the field before any call to Sestek.
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
