"""
Run the Sestek emulator as a process: ``python -m airflow_provider_sestek.testing`` (port 8765 by default).

Once it accepts connections it prints three lines, then runs until SIGINT or SIGTERM and exits 0::

    Sestek emulator listening on http://127.0.0.1:8765
    airflow connections add sestek_default --conn-json '{"conn_type": "sestek", ...}'
    export AIRFLOW_CONN_SESTEK_DEFAULT='{"conn_type": "sestek", ...}'

The JSON is the connection the pytest plugin's ``sestek_connection`` fixture sets (either line defines it);
``--quiet`` prints the first line only, for harnesses whose logs must not hold the client secrets.
Control the emulator with :class:`~airflow_provider_sestek.testing.EmulatorClient`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType

from ._connection import CONNECTION_ID, connection_setup_lines
from ._model import (
    DEFAULT_CLIENTS,
    DEFAULT_INFERENCE_CLIENTS,
    DEFAULT_TENANT,
    DEFAULT_TOKEN_LIFETIME,
    DEFAULT_TOKEN_PREFIX,
)
from .emulator import SestekEmulator, is_loopback

#: The port the command line listens on unless told otherwise: not 8080, which Airflow's own web server takes.
DEFAULT_PORT = 8765


def _client_pair(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not sep or not client_id or not secret:
        # The value is not quoted: a mistyped separator (ID=SECRET) would print the secret.
        raise argparse.ArgumentTypeError("expected ID:SECRET (a non-empty id, a colon, a non-empty secret)")
    return client_id, secret


def _positive_seconds(value: str) -> float:
    # nan and inf parse as floats; an emulator that never expires a token or never moves on is a typo.
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of seconds, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return number


def _tenant(value: str) -> str:
    # The provider refuses such a tenant when it reads the connection: refuse it before printing one.
    from airflow_provider_sestek.api.validation import TENANT_PATTERN, TENANT_RULE

    if not TENANT_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"tenant {value!r} must be {TENANT_RULE}")
    return value


def _conn_id(value: str) -> str:
    if not value or any(char.isspace() or not char.isprintable() for char in value):
        raise argparse.ArgumentTypeError(f"connection id {value!r} must be non-empty, without spaces")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_sestek.testing",
        description="Emulate the Sestek AI (Knovvu) external training API and its token service.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on; anything but loopback needs --allow-remote (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach (the admin API under /_emulator/ has no authentication)",
    )
    parser.add_argument(
        "--record-secrets",
        action="store_true",
        help="keep client secrets and tokens verbatim in recorded requests (default: redacted to markers)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--tenant", type=_tenant, default=DEFAULT_TENANT, help="tenant name (default: %(default)s)")
    parser.add_argument(
        "--client",
        action="append",
        type=_client_pair,
        metavar="ID:SECRET",
        help="training client, repeatable (default: {})".format(":".join(next(iter(DEFAULT_CLIENTS.items())))),
    )
    parser.add_argument(
        "--inference-client",
        action="append",
        type=_client_pair,
        metavar="ID:SECRET",
        help="inference client, repeatable (default: {})".format(
            ":".join(next(iter(DEFAULT_INFERENCE_CLIENTS.items())))
        ),
    )
    parser.add_argument(
        "--token-lifetime",
        type=_positive_seconds,
        default=DEFAULT_TOKEN_LIFETIME,
        metavar="S",
        help="seconds an access token lives (default: %(default)s)",
    )
    parser.add_argument(
        "--token-prefix",
        default=DEFAULT_TOKEN_PREFIX,
        metavar="P",
        help="every access token starts with this, to grep logs for leaks (default: %(default)s)",
    )
    parser.add_argument(
        "--advance",
        choices=("poll", "time"),
        default="poll",
        help="poll: each progress call moves a training on; time: it follows the clock (default: %(default)s)",
    )
    parser.add_argument(
        "--steps-per-poll",
        type=_positive_int,
        default=1,
        metavar="N",
        help="statuses per progress call with --advance poll (default: %(default)s)",
    )
    parser.add_argument(
        "--seconds-per-step",
        type=_positive_seconds,
        default=1.0,
        metavar="F",
        help="seconds per status with --advance time (default: %(default)s)",
    )
    parser.add_argument(
        "--status-case",
        choices=("title", "lower"),
        default="title",
        help="title: Completed; lower: completed, as parts of the API docs show (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-model",
        action="append",
        default=[],
        metavar="ID",
        help="model id whose trainings fail at the Training step, repeatable",
    )
    parser.add_argument(
        "--max-recorded-requests",
        type=_positive_int,
        default=100_000,
        metavar="N",
        help="how many API requests the admin API keeps, oldest dropped first (default: %(default)s)",
    )
    parser.add_argument("--data-dir", default=None, help="keep uploads here instead of a temporary directory")
    parser.add_argument("--certfile", default=None, help="PEM certificate: serve HTTPS")
    parser.add_argument("--keyfile", default=None, help="PEM private key for --certfile")
    parser.add_argument("--ready-file", default=None, metavar="PATH", help="write the URL here once listening")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the listening line, not the connection lines (they carry the client secrets)",
    )
    parser.add_argument(
        "--conn-id",
        type=_conn_id,
        default=CONNECTION_ID,
        help="Airflow connection id in the printed connection lines (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="logging level, any case (default: %(default)s)",
    )
    return parser


def _can_write_beside(path: str) -> bool:
    # Tried before the server starts: a folder that exists but takes no files (/proc) failed after it.
    try:
        fd, probe = tempfile.mkstemp(prefix=".sestek-ready-", dir=os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _write_ready_file(path: str, url: str) -> None:
    # Written atomically so a waiting process never reads a half-written URL.
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".sestek-ready-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(url + "\n")
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)  # no stray temporary file beside the one asked for
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the emulator until SIGINT/SIGTERM.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ready_file and not os.path.isdir(os.path.dirname(os.path.abspath(args.ready_file))):
        # Checked before the server starts: writing it later would end in a traceback, the server still up.
        parser.error(f"--ready-file {args.ready_file!r}: its folder does not exist")
    if args.ready_file and (os.path.isdir(args.ready_file) or args.ready_file.endswith(os.sep)):
        parser.error(f"--ready-file {args.ready_file!r} is a folder; name the file to write")
    if args.ready_file and not _can_write_beside(args.ready_file):
        parser.error(f"--ready-file {args.ready_file!r}: cannot create a file in its folder")
    if args.data_dir == "":
        parser.error("--data-dir must not be empty")
    if not args.allow_remote and not is_loopback(args.host):
        parser.error(
            f"--host {args.host!r} is not a loopback address; the admin API under /_emulator/ has no "
            "authentication, so listening where other machines can reach it needs --allow-remote"
        )
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The warning about an unauthenticated admin API on a reachable interface is shown at any --log-level.
    emulator_log = logging.getLogger(SestekEmulator.__module__)
    emulator_log.setLevel(min(logging.getLevelName(args.log_level), logging.WARNING))
    try:
        emulator = SestekEmulator(
            host=args.host,
            port=args.port,
            tenant=args.tenant,
            clients=dict(args.client) if args.client else None,
            inference_clients=dict(args.inference_client) if args.inference_client else None,
            token_lifetime=args.token_lifetime,
            token_prefix=args.token_prefix,
            advance=args.advance,
            steps_per_poll=args.steps_per_poll,
            seconds_per_step=args.seconds_per_step,
            status_case=args.status_case,
            fail_models=args.fail_model,
            data_dir=args.data_dir,
            certfile=args.certfile,
            keyfile=args.keyfile,
            max_recorded_requests=args.max_recorded_requests,
            record_secrets=args.record_secrets,
            allow_remote=args.allow_remote,
        )
        emulator.start()
    except (ValueError, OSError) as exc:
        print(f"Sestek emulator failed to start: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        # Ready file first: whoever reacts to the printed line may already look for it.
        if args.ready_file:
            _write_ready_file(args.ready_file, emulator.url)
        # One write: whoever reads the first line finds the connection lines right behind it.
        lines = [f"Sestek emulator listening on {emulator.url}"]
        if not args.quiet:
            lines += connection_setup_lines(emulator, args.conn_id)
        print("\n".join(lines), flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
