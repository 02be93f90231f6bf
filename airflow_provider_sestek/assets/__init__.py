"""Airflow Assets of the Sestek provider: the trained model, ``sestek://{host[:port]}{/base/path}/{tenant}/{model_id}``."""

from __future__ import annotations

from airflow_provider_sestek.assets.sestek import (
    model_asset,
    model_asset_name,
    model_asset_uri,
    model_identity,
    normalize_host,
    sanitize_uri,
)

__all__ = ["model_asset", "model_asset_name", "model_asset_uri", "model_identity", "normalize_host", "sanitize_uri"]
