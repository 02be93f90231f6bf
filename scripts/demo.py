"""
``make demo``: the whole flow, offline, on the embedded Sestek emulator and a throwaway SQLite Airflow home.

It trains a Generative-QA model on the example FAQ with ``SestekTrainOperator`` (deferred: the wait runs
in a trigger), waits until the model is published, asks it a question, and prints what happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    home = tempfile.mkdtemp(prefix="sestek-demo-airflow-home-")
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        SESTEK_EXAMPLE_POLL_INTERVAL="0.5",
    )
    try:
        print(f"[demo] throwaway Airflow home: {home}; migrating the SQLite metadata DB ...", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)

        from airflow_provider_sestek.testing import SestekEmulator
        from airflow_provider_sestek.testing.pytest_plugin import connection_json

        with SestekEmulator(advance="time", seconds_per_step=0.3) as emu:
            os.environ["AIRFLOW_CONN_SESTEK_DEFAULT"] = connection_json(emu)
            print(f"[demo] Sestek emulator at {emu.url} (tenant {emu.tenant})", flush=True)

            sys.path.insert(0, str(REPO / "example_dags"))
            from example_sestek_generative_qa import dag

            run = dag.test()
            state = str(getattr(run, "state", run))
            print(f"\n[demo] DAG run {dag.dag_id}: {state}")
            print(
                "[demo] emulator saw: {trainings_created} training(s), {token_requests} token request(s), "
                "{progress_polls} progress poll(s), {inference_requests} question(s)".format(**emu.counters)
            )

            from airflow_provider_sestek.hooks.sestek import SestekHook

            question = "How do I reset my password?"
            answer = SestekHook().ask("acme-faq-bot", question)["result"][0]
            print(f"[demo] Q: {question}\n[demo] A: {answer['answer']}")
            print(f"[demo]    (source: {answer['docs'][0]['source'] if answer.get('docs') else '-'})")
            ok = state.endswith("success") and emu.counters["trainings_created"] == 1
            print("[demo] OK" if ok else "[demo] FAILED")
            return 0 if ok else 1
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
