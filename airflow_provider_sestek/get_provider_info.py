"""
Provider metadata that Airflow discovers through the ``apache_airflow_provider`` entry point.

Airflow 3.2+ builds the connection form from ``conn-fields`` / ``ui-field-behaviour`` here without
importing the hook; 2.11 - 3.1 ask the hook (which reads the same constants), so the form is
declared once.
"""

from __future__ import annotations

from typing import Any

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "identity_url": {
        "label": "Identity URL",
        "description": "Base URL of the OAuth2 token service (/connect/token is added). Empty: the Base URL.",
        "schema": {"type": ["string", "null"]},
    },
    "tenant": {
        "label": "Tenant",
        "description": "Tenant name; published models answer at /published/{tenant}-{model_id}/...",
        "schema": {"type": ["string", "null"]},
    },
    "inference_client_id": {
        "label": "Inference client id",
        "description": "Client id with the AIModule scope, used to ask published models. Empty: the Client ID.",
        "schema": {"type": ["string", "null"]},
    },
    "inference_client_secret": {
        "label": "Inference client secret",
        "description": "Secret of the inference client.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "verify": {
        "label": "Verify",
        "description": "TLS verification: true (default), false, or the path of a CA bundle file.",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout",
        "description": (
            "Total deadline of each request in seconds, connecting to the last byte of the answer "
            "(default 60; connecting waits at most 10)."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "portal_url": {
        "label": "Portal URL template",
        "description": "Optional link shown on training tasks, e.g. https://portal.example.com/models/{model_id}",
        "schema": {"type": ["string", "null"]},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "Base URL", "login": "Client ID", "password": "Client Secret"},
    "placeholders": {
        "host": "https://ai.example.com",
        "login": "training client id",
        "password": "training client secret",
        "identity_url": "https://identity.example.com",
        "tenant": "acme",
        "inference_client_id": "inference client id (AIModule scope)",
        "inference_client_secret": "inference client secret",
        "verify": "true",
        "timeout": "60",
        "portal_url": "https://portal.example.com/models/{model_id}",
        "extra": '{"identity_url": "https://identity.example.com", "tenant": "acme"}',
    },
}

_INTEGRATION = "Sestek AI"

#: The ``sestek`` asset scheme (the trained model). Airflow 3 reads ``asset-uris``, 2.11 ``dataset-uris``.
ASSET_URIS: list[dict[str, Any]] = [
    {
        "schemes": ["sestek"],
        "handler": "airflow_provider_sestek.assets.sestek.sanitize_uri",
        "factory": "airflow_provider_sestek.assets.sestek.create_asset",
        "to_openlineage_converter": "airflow_provider_sestek.assets.sestek.convert_asset_to_openlineage",
    }
]


def get_provider_info() -> dict[str, Any]:
    """Return the provider info dict; ``package-name`` must equal the distribution name."""
    from airflow_provider_sestek import __version__

    return {
        "package-name": "airflow-provider-sestek",
        "name": "Sestek AI",
        "description": "Train, wait for and query Sestek AI (Knovvu) Generative-QA models.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.sestek.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_sestek.hooks.sestek"]}],
        "operators": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_sestek.operators.sestek"]}
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_sestek.sensors.sestek"]}],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_sestek.triggers.sestek",
                    "airflow_provider_sestek.triggers.published",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_sestek.hooks.sestek.SestekHook",
                "hook-name": "Sestek AI",
                "connection-type": "sestek",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "extra-links": ["airflow_provider_sestek.links.sestek.SestekModelLink"],
        "asset-uris": ASSET_URIS,
        "dataset-uris": ASSET_URIS,
    }
