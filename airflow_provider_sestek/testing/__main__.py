"""
Run the Sestek emulator as a process: ``python -m airflow_provider_sestek.testing --port 8080``.

It prints one line ``Sestek emulator listening on <url>`` once it accepts connections and runs until
SIGINT or SIGTERM, then exits 0. Control it with :class:`~airflow_provider_sestek.testing.EmulatorClient`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType

from ._model import DEFAULT_CLIENTS, DEFAULT_INFERENCE_CLIENTS, DEFAULT_TENANT, DEFAULT_TOKEN_LIFETIME
from .emulator import SestekEmulator


def _client_pair(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not sep or not client_id or not secret:
        raise argparse.ArgumentTypeError(f"expected ID:SECRET, got {value!r}")
    return client_id, secret


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_sestek.testing",
        description="Emulate the Sestek AI (Knovvu) external training API and its token service.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--tenant", default=DEFAULT_TENANT, help="tenant name (default: %(default)s)")
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
    parser.add_argument("--token-lifetime", type=float, default=DEFAULT_TOKEN_LIFETIME, metavar="S")
    parser.add_argument("--token-prefix", default="emu-", metavar="P")
    parser.add_argument("--advance", choices=("poll", "time"), default="poll")
    parser.add_argument("--steps-per-poll", type=int, default=1, metavar="N")
    parser.add_argument("--seconds-per-step", type=float, default=1.0, metavar="F")
    parser.add_argument("--status-case", choices=("title", "lower"), default="title")
    parser.add_argument("--fail-model", action="append", default=[], metavar="ID", help="repeatable")
    parser.add_argument("--data-dir", default=None, help="keep uploads here instead of a temporary directory")
    parser.add_argument("--certfile", default=None, help="PEM certificate: serve HTTPS")
    parser.add_argument("--keyfile", default=None, help="PEM private key for --certfile")
    parser.add_argument("--ready-file", default=None, metavar="PATH", help="write the URL here once listening")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="logging level, any case (default: %(default)s)",
    )
    return parser


def _write_ready_file(path: str, url: str) -> None:
    # Written atomically so a waiting process never reads a half-written URL.
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".sestek-ready-", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(url + "\n")
    os.replace(temp, path)


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
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        print(f"Sestek emulator listening on {emulator.url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
