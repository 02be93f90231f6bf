"""The provider is discovered by Airflow itself: entry point, hooks, connection form."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

from airflow_provider_sestek.get_provider_info import CONN_FIELDS, get_provider_info


def test_entry_point_and_package_name() -> None:
    (ep,) = [
        e
        for e in importlib.metadata.entry_points(group="apache_airflow_provider")
        if e.value.startswith("airflow_provider_sestek")
    ]
    info = ep.load()()
    assert info["package-name"] == "airflow-provider-sestek"
    assert importlib.metadata.distribution(info["package-name"]).metadata["Name"] == "airflow-provider-sestek"
    assert info == get_provider_info()


def test_providers_manager_loads_it() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "airflow-provider-sestek" in pm.providers
    try:  # Airflow 3.2+: workers resolve hooks through the task SDK's runtime manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:
        hooks = pm.hooks
    hook_info = hooks["sestek"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_sestek.hooks.sestek.SestekHook"
    assert hook_info.connection_id_attribute_name == "sestek_conn_id"
    assert hook_info.hook_name == "Sestek AI"
    widgets = pm.connection_form_widgets
    for name in CONN_FIELDS:
        assert f"extra__sestek__{name}" in widgets
    assert widgets["extra__sestek__inference_client_secret"].is_sensitive
    behaviour = pm.field_behaviours["sestek"]
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}
    assert behaviour["relabeling"] == {"host": "Base URL", "login": "Client ID", "password": "Client Secret"}


def test_connection_get_hook() -> None:
    try:  # what task code holds on Airflow 3
        from airflow.sdk import Connection
    except ImportError:
        from airflow.models.connection import Connection  # type: ignore[assignment]

    from airflow_provider_sestek.hooks.sestek import SestekHook

    hook = Connection(conn_id="x", conn_type="sestek", host="https://ai.example.com").get_hook()
    assert isinstance(hook, SestekHook)
    assert hook.sestek_conn_id == "x"


def test_hook_form_methods_match_provider_info() -> None:
    from airflow_provider_sestek.hooks.sestek import SestekHook

    behaviour = SestekHook.get_ui_field_behaviour()
    info = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == info["hidden-fields"]
    assert behaviour["relabeling"] == info["relabeling"]
    try:
        widgets = SestekHook.get_connection_form_widgets()
    except ImportError:  # flask-appbuilder is not part of Airflow 3's core install
        return
    assert set(widgets) == set(CONN_FIELDS)


def test_airflow_cli_lists_provider_and_hook() -> None:
    env = os.environ.copy()
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    rows = json.loads(out[out.index("[") :])
    assert any(
        r.get("connection_type") == "sestek" and r.get("package_name") == "airflow-provider-sestek" for r in rows
    ), rows
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "airflow-provider-sestek" in out
