"""The provider is discovered by Airflow itself: entry point, hooks, connection form."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
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


def _has(distribution: str) -> bool:
    # Installed, not importable: Airflow 3.1's UI puts stand-ins for WTForms and FAB into sys.modules.
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_connection_form_shows_the_sestek_fields_where_the_line_can() -> None:
    """What the connection form of each line is given (README, "In the Airflow UI")."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_0_PLUS:  # 2.11: the Flask form, from the hook's WTForms fields
        from airflow.providers_manager import ProvidersManager

        pm = ProvidersManager()
        widgets = pm.connection_form_widgets
        assert {f"extra__sestek__{name}" for name in CONN_FIELDS} <= set(widgets)
        assert widgets["extra__sestek__inference_client_secret"].is_sensitive
        assert not widgets["extra__sestek__tenant"].is_sensitive
        behaviour = pm.field_behaviours["sestek"]
        assert set(behaviour["hidden_fields"]) == {"schema", "port"}
        assert behaviour["relabeling"] == {"host": "Base URL", "login": "Client ID", "password": "Client Secret"}
        return
    # Airflow 3: the React form, from the UI's own hook metadata service, asked in a process of its own as the
    # API server asks it (3.1 answers from a ProvidersManager already filled without its stand-ins otherwise).
    out = subprocess.run(
        [sys.executable, "-c", _HOOK_META],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    ).stdout
    # Airflow 3.0 logs to stdout too: the answer is the line after the marker.
    meta = json.loads(out.rpartition("HOOK_META ")[2].splitlines()[0])
    if not AIRFLOW_V_3_1_PLUS and not _has("wtforms"):
        # A bare 3.0 (no FAB provider): Airflow's ProvidersManager needs WTForms to read any hook's form, so
        # the form is the generic one and the extras go in the Extra JSON field.
        assert not meta["extra_fields"]
        return
    standard = meta["standard_fields"]
    assert standard is not None
    assert standard["login"]["title"] == "Client ID"
    assert standard["password"]["title"] == "Client Secret"
    assert standard["port"]["hidden"] and standard["url_schema"]["hidden"]
    extra = {name.removeprefix("extra__sestek__"): field for name, field in (meta["extra_fields"] or {}).items()}
    assert set(extra) == set(CONN_FIELDS)
    schema = extra["inference_client_secret"]["schema"]
    assert schema["format"] == "password" and schema["title"] == CONN_FIELDS["inference_client_secret"]["label"]
    assert "format" not in extra["tenant"]["schema"]


_HOOK_META = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(meta,) = [h for h in HookMetaService.hook_meta_data() if h.connection_type == "sestek"]
print("HOOK_META " + json.dumps(meta.model_dump(mode="json"), default=str))
"""


def _json_array(out: str) -> list[dict[str, object]]:
    """The JSON array in a CLI's stdout, past any log lines it printed there first (3.0 logs to stdout).

    :param out: the command's standard output.
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\[", out, re.MULTILINE):
        try:
            value, _ = decoder.raw_decode(out, match.start())
        except json.JSONDecodeError:
            continue  # a log line such as "[2026-12-04T18:03:11+0000] {plugins.py:37} INFO - ..."
        if isinstance(value, list):
            return value
    raise AssertionError(f"no JSON array in the output: {out[-2000:]}")


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
    widgets = SestekHook.get_connection_form_widgets()  # never raises, with or without FAB and WTForms
    if _has("wtforms") and _has("flask-babel"):
        assert set(widgets) == set(CONN_FIELDS)
    elif "wtforms" not in sys.modules:  # (3.1's UI may have put its stand-ins there: then it has fields)
        assert widgets == {}


def test_airflow_cli_lists_provider_and_hook() -> None:
    env = os.environ.copy()
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    rows = _json_array(out)
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
