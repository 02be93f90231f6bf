"""
A throwaway Airflow home for a user's test session, so ``dag.test()`` works with one fixture.

Airflow reads its configuration when it is first imported, so the pytest plugin calls :func:`claim_home`
before any conftest or test module is imported; the metadata DB is migrated later, once, on the first test
that asks for it (:func:`migrate_once`). Everything here is decided from the environment mapping it is
given; only :func:`migrate_once` and :func:`dags_folder_for` touch Airflow, and they import it lazily.

A home the user chose (``AIRFLOW_HOME`` or ``AIRFLOW_CONFIG`` set) is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path

#: Set to ``0`` (or ``false``, ``no``, ``off``) to keep the plugin away from Airflow's configuration.
OPT_OUT_ENV = "SESTEK_PYTEST_AIRFLOW_HOME"
#: The home this plugin created; inherited by child processes (pytest-xdist workers), which then reuse it.
OWNED_ENV = "_SESTEK_PYTEST_OWNED_AIRFLOW_HOME"
#: Written into the home once its metadata DB is migrated, so a second process does not migrate again.
MIGRATED_MARKER = ".sestek-db-migrated"

_FALSE = frozenset({"0", "false", "no", "off"})
_migrated: set[str] = set()


def enabled(environ: MutableMapping[str, str], ini_value: bool = True) -> bool:
    """
    Whether the plugin may set up a throwaway Airflow home.

    :param environ: the process environment.
    :param ini_value: the ``sestek_airflow_home`` ini option.
    """
    return ini_value and environ.get(OPT_OUT_ENV, "1").strip().lower() not in _FALSE


def settings_for(home: str) -> dict[str, str]:
    """
    The Airflow settings of a throwaway home: a SQLite DB inside it and no example DAGs (which Airflow 3's
    ``dag.test()`` would otherwise parse as a second bundle, and Airflow 2 loads into the DB).

    :param home: the folder.
    """
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{Path(home) / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def claim_home(environ: MutableMapping[str, str], ini_value: bool = True) -> str | None:
    """
    Point Airflow at a new temporary home unless the user configured one; return the folder created.

    Settings the user did set (e.g. ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``) are kept. A home inherited from a
    parent process that claimed it is reused, not created again (``None`` is returned: not ours to delete).

    :param environ: the process environment, updated in place.
    :param ini_value: the ``sestek_airflow_home`` ini option.
    """
    if not enabled(environ, ini_value) or owned_home(environ) is not None:
        return None
    if environ.get("AIRFLOW_HOME") or environ.get("AIRFLOW_CONFIG"):
        return None
    home = tempfile.mkdtemp(prefix="sestek-pytest-airflow-home-")
    environ["AIRFLOW_HOME"] = home
    for key, value in settings_for(home).items():
        environ.setdefault(key, value)
    environ[OWNED_ENV] = home
    return home


def owned_home(environ: MutableMapping[str, str]) -> str | None:
    """
    The home this plugin claimed, if Airflow is still pointed at it (a conftest may have changed it since).

    :param environ: the process environment.
    """
    home = environ.get(OWNED_ENV)
    return home if home and environ.get("AIRFLOW_HOME") == home else None


def owns_database(environ: MutableMapping[str, str]) -> bool:
    """
    Whether the metadata DB is the throwaway one (a DB the user configured is never migrated by the plugin).

    :param environ: the process environment.
    """
    home = owned_home(environ)
    if home is None:
        return False
    return (
        environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") == settings_for(home)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )


def release_home(home: str | None, environ: MutableMapping[str, str]) -> None:
    """
    Delete a home :func:`claim_home` created, at the end of the session.

    :param home: what :func:`claim_home` returned.
    :param environ: the process environment.
    """
    if home is None:
        return
    shutil.rmtree(home, ignore_errors=True)
    if environ.get(OWNED_ENV) == home:
        del environ[OWNED_ENV]


@contextlib.contextmanager
def _locked(home: str) -> Iterator[None]:
    # pytest-xdist workers share the home: one migrates, the others wait for it and then see the marker.
    with open(Path(home) / ".sestek-db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate_once(environ: MutableMapping[str, str]) -> bool:
    """
    Create the throwaway metadata DB's tables, once per home; return whether the DB is the throwaway one.

    Runs in-process with ``airflow.utils.db.initdb`` (a fresh DB is created from the models and stamped,
    seconds instead of a subprocess replaying every migration).

    :param environ: the process environment.
    """
    if not owns_database(environ):
        return False
    home = environ["AIRFLOW_HOME"]
    if home in _migrated:
        return True
    marker = Path(home) / MIGRATED_MARKER
    with _locked(home):
        if not marker.exists():
            from airflow.utils import db

            db.initdb()
            marker.write_text("migrated by airflow_provider_sestek's pytest plugin\n")
    _migrated.add(home)
    return True


def dags_folder_for(fileloc: str) -> str:
    """
    The folder Airflow 3's ``dag.test()`` must take as its DAG bundle to run the DAG defined in ``fileloc``.

    Airflow 3 only runs a DAG that a bundle holds (it parses the bundle and runs the serialized DAG; a DAG
    found in no bundle fails with "the dag is not serialized"). The DAG's own folder is the smallest bundle
    that holds it; the project root would parse every file beneath it, a virtualenv included.

    :param fileloc: the DAG's ``fileloc``.
    """
    return os.path.dirname(os.path.abspath(fileloc))
