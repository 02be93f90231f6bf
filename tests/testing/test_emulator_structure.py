"""
The emulator's shape, read from its source (``ast``): one state object that the routes talk to through
its methods, a pure lifecycle and fault model, and aiohttp only behind :meth:`SestekEmulator.start`.
"""

from __future__ import annotations

import ast

from tests.test_layers import GRAPH, MODULES, PACKAGE, _import_nodes

TESTING = f"{PACKAGE}.testing"
SOURCES = {name: path for name, path in MODULES.items() if name.startswith(TESTING)}
#: The only imports inside functions, each for the reason given: never to dodge an import circle.
LAZY_IMPORTS = {
    # aiohttp and the server modules load when an emulator starts, not when the pytest plugin loads.
    (f"{TESTING}.emulator", "from ._server import Server"),
    # urllib.request costs ~20 ms to import; only callbacks, data URLs and the admin client need it.
    (f"{TESTING}._client", "import urllib.request"),
    (f"{TESTING}._client", "import urllib.error"),
    (f"{TESTING}._outbound", "import urllib.request"),
    (f"{TESTING}._outbound", "import urllib.error"),
    # The CLI checks a tenant with the provider's rule; the plugin's fixtures use Airflow and the hook.
    (f"{TESTING}.__main__", "from airflow_provider_sestek.api.validation import TENANT_PATTERN, TENANT_RULE"),
    (f"{TESTING}._airflow_env", "from airflow.utils import db"),
    (f"{TESTING}.pytest_plugin", "from airflow_provider_sestek.hooks.sestek import SestekHook"),
    (f"{TESTING}.pytest_plugin", "from airflow_provider_sestek.waiting import ProgressWatcher"),
    (f"{TESTING}.pytest_plugin", "import airflow"),
    (f"{TESTING}.pytest_plugin", "from airflow import settings"),
    (f"{TESTING}.pytest_plugin", "from airflow.sdk.definitions.dag import DAG"),
}
#: Modules that are plain data and rules: no server, no threads, no clock of their own.
PURE = ("_lifecycle", "_faults", "_redaction", "_endpoints", "_model", "_retrieval", "_wire")


def _tree(name: str) -> ast.Module:
    return ast.parse(SOURCES[name].read_text(), str(SOURCES[name]))


def _imported_names(name: str) -> set[str]:
    found = set()
    for node in _import_nodes(_tree(name), typing_too=True):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif node.module and not node.level:
            found.add(node.module)
    return found


def test_no_emulator_module_reaches_into_another_objects_private_attributes() -> None:
    # The routes used to read emu._trainings, emu._lock, emu._counters ...: 56 accesses to 19 attributes.
    found = []
    for name in SOURCES:
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_the_routes_are_given_the_state_not_the_facade() -> None:
    routes = ["_api", "_api_train", "_api_inference", "_admin", "_fault_delivery", "_foreign"]
    for route in routes:
        name = f"{TESTING}.{route}"
        assert f"{TESTING}.emulator" not in GRAPH[name], name
        assert f"{TESTING}._state" in GRAPH[name] or route == "_foreign", name
        assert "SestekEmulator" not in SOURCES[name].read_text(), name


def test_functions_import_only_to_keep_the_plugin_light() -> None:
    found = set()
    for name in SOURCES:
        for function in ast.walk(_tree(name)):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        found.add((name, ast.unparse(node)))
    assert found - LAZY_IMPORTS == set()


def test_the_pure_modules_import_no_server_thread_or_clock() -> None:
    for module in PURE:
        imported = _imported_names(f"{TESTING}.{module}")
        assert not imported & {"aiohttp", "asyncio", "threading", "time", "socket"}, (module, imported)


def test_the_fault_model_and_queue_live_outside_the_server() -> None:
    from airflow_provider_sestek.testing import _faults

    assert _faults.FaultQueue.__module__ == f"{TESTING}._faults"
    assert "aiohttp" not in {n.split(".")[0] for n in _imported_names(f"{TESTING}._faults")}
