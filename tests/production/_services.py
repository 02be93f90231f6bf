"""
The servers of the production-shaped deployment, from Debian's packages, each a throwaway instance on a free
loopback port started and stopped by PID: PostgreSQL (a new cluster in a temp dir) and Redis (no persistence).
``make test-production`` installs the packages; the fixtures fail with the command to run when they are absent.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests._processes import Process, free_port, start_process, tail
from tests.real_airflow._harness import _decoded

#: The metadata database's user and name (trust authentication on 127.0.0.1 only: no password to leak).
DB_USER = DB_NAME = "airflow"


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's server binaries (Debian installs them per major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make test-production` (it apt-installs postgresql)")
    return Path(found[-1]).parent


def _as_postgres_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's ``postgres`` user."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@dataclass
class Postgres:
    """A PostgreSQL cluster of its own: ``initdb`` into ``root``, ``postgres`` as a process, one database."""

    root: Path
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    @classmethod
    def start(cls, timeout: float = 60) -> Postgres:
        """Create and start a cluster in a new temp dir (its own: the ``postgres`` user must reach it)."""
        bindir = _postgres_bin()
        root = Path(tempfile.mkdtemp(prefix="sestek-postgres-"))
        data = root / "pgdata"
        data.mkdir()
        as_user = _as_postgres_user()
        if as_user:
            os.chown(root, as_user["user"], as_user["group"])
            os.chown(data, as_user["user"], as_user["group"])
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
            **as_user,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        port = free_port()
        # Durability off: a throwaway cluster. No Unix socket: TCP on loopback only.
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        process = _start_as(as_user, "postgres", argv, root / "postgres.out", root)
        postgres = cls(root, process, port)
        process.wait_until(postgres._accepts, timeout, "accepting connections")
        with contextlib.closing(postgres.connect("postgres")) as conn:
            conn.autocommit = True
            conn.cursor().execute(f"CREATE DATABASE {DB_NAME}")
        return postgres

    def connect(self, database: str = DB_NAME) -> Any:
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname=database, connect_timeout=5)

    def _accepts(self) -> bool:
        try:
            self.connect("postgres").close()
        except Exception:
            return False
        return True

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        import psycopg2.extras

        with contextlib.closing(self.connect()) as conn:
            conn.autocommit = True
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(sql, params)
                return [dict(row) for row in cursor.fetchall()]

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _start_as(as_user: dict[str, Any], name: str, argv: list[str], output: Path, cwd: Path) -> Process:
    """:func:`start_process`, as another user when given one (its own output file, owned by it)."""
    if not as_user:
        return start_process(name, argv, os.environ, output, cwd)
    output.touch()
    os.chown(output, as_user["user"], as_user["group"])
    with output.open("ab") as handle:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            **as_user,
        )
    return Process(name, popen, output)


@dataclass
class Redis:
    """A Redis server of its own (no persistence), the Celery broker."""

    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, root: Path, timeout: float = 30) -> Redis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("Redis is not installed: run `make test-production` (it apt-installs redis-server)")
        port = free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(root)]
        process = start_process("redis", argv, os.environ, root / "redis.out", root)
        redis = cls(process, port)
        process.wait_until(redis._pong, timeout, "answering PING")
        return redis

    def _pong(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.process.stop()


def redis_texts(url: str) -> list[tuple[str, str]]:
    """Every key of a Redis database (the Celery broker's queues, bindings, unacked messages), as text."""
    import redis

    def text(value: Any) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    client = redis.Redis.from_url(url)
    found: list[tuple[str, str]] = []
    for key in client.scan_iter(count=1000):
        kind = text(client.type(key))
        values: list[Any]
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))
        elif kind == "hash":
            values = [f"{k!r}: {v!r}" for k, v in client.hgetall(key).items()]
            values += [v for v in client.hgetall(key).values()]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = list(client.zrange(key, 0, -1))
        else:
            values = []
        found += [(f"redis:{text(key)}", text(value)) for value in values]
    client.close()
    return found


def postgres_texts(postgres: Postgres, fernet_key: str) -> list[tuple[str, str]]:
    """Every cell of every table of the metadata database, decoded, as ``(table.column#row, text)``."""
    from cryptography.fernet import Fernet

    fernet = Fernet(fernet_key.encode())
    tables = [row["tablename"] for row in postgres.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    found: list[tuple[str, str]] = []
    for table in tables:
        for number, row in enumerate(postgres.query(f'SELECT * FROM "{table}"')):  # names from pg_tables
            for column, value in row.items():
                if isinstance(value, dict | list):
                    value = json.dumps(value, default=str)
                elif value is not None and not isinstance(value, str | bytes | memoryview):
                    value = str(value)
                for text in _decoded(value, fernet):
                    found.append((f"{table}.{column}#{number}", text))
    return found


def wait_gone(process: Process, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.alive():
        raise RuntimeError(f"{process.name} still alive:\n{tail(process.output)}")
