"""
Everything the provider knows about the Sestek AI external training API, with no I/O.

This is the "sans-IO" core: URL building, request shapes, response parsing, the status enums, the
model-id rule and the mapping of HTTP errors to exceptions. The sync (requests) and async (aiohttp)
transports in :mod:`airflow_provider_sestek.hooks.sestek` only move bytes; operators, sensors and
triggers never build a URL themselves. Keeping this package pure makes every rule testable without
a server and keeps the two transports from drifting apart.

It is split by concern: :mod:`.urls`, :mod:`.statuses`, :mod:`.validation`, :mod:`.bodies`,
:mod:`.responses` and :mod:`.errors`; every public name is importable from here.
"""

from __future__ import annotations

from airflow_provider_sestek.api.bodies import (
    SECRET_FIELDS,
    CallbackConfig,
    inference_body,
    secret_values,
    token_form,
    training_form_fields,
    validate_callback,
)
from airflow_provider_sestek.api.errors import (
    error_from_response,
    excerpt,
    is_retryable_status,
    redact,
    redirect_error,
    retry_after_seconds,
    too_large_error,
    without_secrets,
)
from airflow_provider_sestek.api.responses import (
    BEARER_TOKEN_PATTERN,
    MAX_SOURCE_LENGTH,
    MAX_SOURCES,
    answer_sources,
    check_inference_results,
    parse_experiment,
    parse_inference,
    parse_progress_response,
    parse_token,
)
from airflow_provider_sestek.api.statuses import (
    InferenceStatus,
    Token,
    TrainingProgress,
    TrainingStatus,
    parse_progress,
    refresh_margin,
)
from airflow_provider_sestek.api.urls import (
    INFERENCE_PATH,
    INFERENCE_SCOPE,
    PROGRESS_PATH,
    TOKEN_PATH,
    TRAIN_PATH,
    TRAINING_SCOPE,
    inference_url,
    normalize_base_url,
    origin,
    progress_url,
    redact_url,
    token_url,
    train_url,
    validate_portal_template,
)
from airflow_provider_sestek.api.validation import (
    MODEL_ID_MAX_LENGTH,
    MODEL_ID_PATTERN,
    MODEL_ID_RULE,
    TENANT_PATTERN,
    TENANT_RULE,
    as_list,
    chat_history_pairs,
    validate_flag,
    validate_http_url,
    validate_model_id,
    validate_project_name,
    validate_tenant,
    validate_text,
)

__all__ = [
    "BEARER_TOKEN_PATTERN",
    "INFERENCE_PATH",
    "INFERENCE_SCOPE",
    "MAX_SOURCES",
    "MAX_SOURCE_LENGTH",
    "MODEL_ID_MAX_LENGTH",
    "MODEL_ID_PATTERN",
    "MODEL_ID_RULE",
    "PROGRESS_PATH",
    "SECRET_FIELDS",
    "TENANT_PATTERN",
    "TENANT_RULE",
    "TOKEN_PATH",
    "TRAINING_SCOPE",
    "TRAIN_PATH",
    "CallbackConfig",
    "InferenceStatus",
    "Token",
    "TrainingProgress",
    "TrainingStatus",
    "answer_sources",
    "as_list",
    "chat_history_pairs",
    "check_inference_results",
    "error_from_response",
    "excerpt",
    "inference_body",
    "inference_url",
    "is_retryable_status",
    "normalize_base_url",
    "origin",
    "parse_experiment",
    "parse_inference",
    "parse_progress",
    "parse_progress_response",
    "parse_token",
    "progress_url",
    "redact",
    "redact_url",
    "redirect_error",
    "refresh_margin",
    "retry_after_seconds",
    "secret_values",
    "token_form",
    "token_url",
    "too_large_error",
    "train_url",
    "training_form_fields",
    "validate_callback",
    "validate_flag",
    "validate_http_url",
    "validate_model_id",
    "validate_portal_template",
    "validate_project_name",
    "validate_tenant",
    "validate_text",
    "without_secrets",
]
