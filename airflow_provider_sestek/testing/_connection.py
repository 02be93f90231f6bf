"""
The Airflow connection that points at an emulator, shared by the pytest plugin and the command line.

Nothing here imports pytest or Airflow.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import SestekEmulator

__all__ = ["CONNECTION_ID", "connection_env_var", "connection_json", "connection_setup_lines"]

#: The Airflow connection id the ``sestek_connection`` fixture and the command line define.
CONNECTION_ID = "sestek_default"


def connection_json(emulator: SestekEmulator, **extra: Any) -> str:
    """
    Return the Airflow connection, in its JSON environment-variable form, that points at ``emulator``.

    :param emulator: a started emulator.
    :param extra: more (or overriding) connection extra keys, e.g. ``timeout=5``.
    """
    client_id, client_secret = emulator.train_client
    inference_id, inference_secret = emulator.inference_client
    return json.dumps(
        {
            "conn_type": "sestek",
            "host": emulator.url,
            "login": client_id,
            "password": client_secret,
            "extra": {
                "identity_url": emulator.identity_url,
                "tenant": emulator.tenant,
                "inference_client_id": inference_id,
                "inference_client_secret": inference_secret,
                **extra,
            },
        }
    )


def connection_env_var(conn_id: str = CONNECTION_ID) -> str:
    """The environment variable Airflow reads connection ``conn_id`` from: ``AIRFLOW_CONN_<ID>``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_setup_lines(emulator: SestekEmulator, conn_id: str = CONNECTION_ID) -> list[str]:
    """
    Return two shell lines that define connection ``conn_id`` pointing at ``emulator``.

    The first stores it in Airflow's metadata database (``airflow connections add``), the second exports it
    as an environment variable (only for an id a shell can name); either suffices. The JSON is shell-quoted.
    """
    quoted = shlex.quote(connection_json(emulator))
    lines = [f"airflow connections add {shlex.quote(conn_id)} --conn-json {quoted}"]
    name = connection_env_var(conn_id)
    # A shell cannot export AIRFLOW_CONN_MY-CONN: pasted, bash would echo the value (secrets) in its error.
    if name.isidentifier() and name.isascii():
        lines.append(f"export {name}={quoted}")
    return lines
