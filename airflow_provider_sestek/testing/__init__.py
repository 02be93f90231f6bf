"""
Offline test support: an emulator of the Sestek AI external training API.

Start one in-process with :class:`SestekEmulator`, as a separate process with
``python -m airflow_provider_sestek.testing``, or through the pytest fixtures of
:mod:`airflow_provider_sestek.testing.pytest_plugin`. Nothing here imports Airflow.

Example::

    from airflow_provider_sestek.testing import Fault, SestekEmulator

    with SestekEmulator(fail_models=["broken-bot"]) as emu:
        emu.add_fault(Fault(endpoint="progress", status=503, retry_after=1, count=2))
        ...  # point a ``sestek`` connection at emu.url / emu.identity_url and run the DAG
        assert emu.counters["trainings_created"] == 1
"""

from __future__ import annotations

from ._client import EmulatorClient
from ._endpoints import Endpoint
from ._faults import Fault, FaultBody, FaultEndpoint, FaultKind, FaultWhen
from ._model import (
    DEFAULT_CLIENTS,
    DEFAULT_INFERENCE_CLIENTS,
    DEFAULT_TENANT,
    DEFAULT_TOKEN_LIFETIME,
    DEFAULT_TOKEN_PREFIX,
    FAILED_STATUS,
    FOREIGN_TOKEN,
    SCOPE_INFERENCE,
    SCOPE_TRAINING,
    TRAINING_STATUSES,
    CallbackAttempt,
    CallbackInfo,
    ReceivedFile,
    RecordedRequest,
    Training,
)
from .emulator import SestekEmulator

__all__ = [
    "DEFAULT_CLIENTS",
    "DEFAULT_INFERENCE_CLIENTS",
    "DEFAULT_TENANT",
    "DEFAULT_TOKEN_LIFETIME",
    "DEFAULT_TOKEN_PREFIX",
    "FAILED_STATUS",
    "FOREIGN_TOKEN",
    "SCOPE_INFERENCE",
    "SCOPE_TRAINING",
    "TRAINING_STATUSES",
    "CallbackAttempt",
    "CallbackInfo",
    "EmulatorClient",
    "Endpoint",
    "Fault",
    "FaultBody",
    "FaultEndpoint",
    "FaultKind",
    "FaultWhen",
    "ReceivedFile",
    "RecordedRequest",
    "SestekEmulator",
    "Training",
]
