"""
DAG-parse cost: importing the operator and sensor modules on top of ``airflow.sdk``, in a fresh interpreter
each time.

Each run times ``import airflow.sdk`` (the baseline every DAG file pays) and then the modules, in one
process, so the figure is a difference measured in the same run (and the ratio to that run's baseline is
kept too: a loaded machine slows both alike). The rule (issue 17) is at most 30 ms over ``airflow.sdk``
for ours. Runs of ours and of the dbt Cloud provider alternate. One unmeasured warm-up run each writes the
bytecode caches, as an installed deployment has them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from benchmarks._common import PYTHON, child_env, log, median, run_json_child

#: What a DAG file of each provider imports: its operator and its sensor module.
MODULES = {
    "sestek": ("airflow_provider_sestek.operators.sestek", "airflow_provider_sestek.sensors.sestek"),
    "dbt": ("airflow.providers.dbt.cloud.operators.dbt", "airflow.providers.dbt.cloud.sensors.dbt"),
}
#: Modules a task needs but a DAG file should not pay for.
HEAVY = ("aiohttp", "httpx", "requests", "requests_toolbelt", "fsspec", "urllib3", "tenacity")

_CODE = """
import json, sys, time
t0 = time.perf_counter()
try:
    import airflow.sdk
except ImportError:  # Airflow 2 has no task SDK: the baseline is what its DAG files import
    import airflow.models.baseoperator
t1 = time.perf_counter()
before = set(sys.modules)
{imports}
t2 = time.perf_counter()
new = set(sys.modules) - before
print(json.dumps({{"baseline_ms": (t1 - t0) * 1000, "module_ms": (t2 - t1) * 1000,
                  "heavy": sorted(m for m in {heavy!r} if m in new)}}))
"""


def available(module: str, env: dict[str, str]) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run(workdir: str, runs: int) -> dict[str, Any]:
    env = child_env(airflow_home=os.path.join(workdir, "airflow-home"))
    kinds = [k for k, modules in MODULES.items() if all(available(m, env) for m in modules)]
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for index in range(runs + 1):
        for kind in kinds:
            code = _CODE.format(imports="\n".join(f"import {m}" for m in MODULES[kind]), heavy=HEAVY)
            result = run_json_child([PYTHON, "-c", code], env, timeout=300)
            if index > 0:  # the first run of each writes the bytecode caches
                samples[kind].append(result)
    baseline = median([s["baseline_ms"] for kind in kinds for s in samples[kind]])

    def cost(kind: str) -> float | None:
        return round(median([s["module_ms"] for s in samples[kind]]), 1) if kind in samples else None

    def share(kind: str) -> float | None:
        """Median, over the runs, of the modules' time as a percentage of that run's own baseline."""
        if kind not in samples:
            return None
        return round(median([100 * s["module_ms"] / s["baseline_ms"] for s in samples[kind]]), 2)

    out: dict[str, Any] = {
        "baseline_ms": round(baseline, 1),
        "sestek_ms": cost("sestek"),
        "dbt_ms": cost("dbt"),
        "sestek_pct_of_baseline": share("sestek"),
        "dbt_pct_of_baseline": share("dbt"),
        "modules": {k: list(MODULES[k]) for k in kinds},
        "runs": runs,
        "sestek_total_ms": round(baseline + (cost("sestek") or 0), 1),
        "dbt_total_ms": round(baseline + cost("dbt"), 1) if "dbt" in samples else None,
        "sestek_heavy_imports": samples["sestek"][0]["heavy"] if samples.get("sestek") else None,
        "dbt_heavy_imports": samples["dbt"][0]["heavy"] if samples.get("dbt") else None,
        "samples": {k: [round(s["module_ms"], 1) for s in v] for k, v in samples.items()},
    }
    log(
        f"imports: airflow.sdk {out['baseline_ms']} ms; ours +{out['sestek_ms']} ms "
        f"({out['sestek_pct_of_baseline']}% of it); dbt Cloud +{out['dbt_ms']} ms"
    )
    return out


if __name__ == "__main__":  # pragma: no cover - manual use
    import tempfile

    print(json.dumps(run(tempfile.mkdtemp(), 3), indent=1))
