"""The emulator's command line prints a ready-to-paste Airflow connection, and that connection works."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_sestek.testing import SestekEmulator
from airflow_provider_sestek.testing.__main__ import DEFAULT_PORT, build_parser

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Cli:
    """The CLI as a process; its first ``lines`` lines of output read."""

    def __init__(self, *args: str, lines: int = 3) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_sestek.testing", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        self.lines = [self.proc.stdout.readline().rstrip("\n") for _ in range(lines)]
        if not self.lines[0].startswith("Sestek emulator listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError((self.lines, err))
        self.url = self.lines[0].rsplit(" ", 1)[1]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def test_default_port_is_not_airflows_8080() -> None:
    assert DEFAULT_PORT == 8765
    args = build_parser().parse_args([])
    assert args.port == 8765 and args.conn_id == "sestek_default"


def test_cli_prints_a_connection_that_the_hook_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    cli = _Cli("--port", str(port), "--tenant", "globex", "--client", "c1:s1", "--inference-client", "i1:s2")
    try:
        assert cli.url == f"http://127.0.0.1:{port}"
        add, export = cli.lines[1], cli.lines[2]

        # Both lines are shell: split them as the shell would and read the JSON back.
        add_words = shlex.split(add)
        assert add_words[:5] == ["airflow", "connections", "add", "sestek_default", "--conn-json"]
        assert len(add_words) == 6
        export_words = shlex.split(export)
        assert len(export_words) == 2 and export_words[0] == "export"
        name, _, value = export_words[1].partition("=")
        assert name == "AIRFLOW_CONN_SESTEK_DEFAULT"
        assert json.loads(value) == json.loads(add_words[5])

        conn = json.loads(value)
        assert conn == {
            "conn_type": "sestek",
            "host": cli.url,
            "login": "c1",
            "password": "s1",
            "extra": {
                "identity_url": cli.url,
                "tenant": "globex",
                "inference_client_id": "i1",
                "inference_client_secret": "s2",
            },
        }

        # The printed connection, as is, is one the provider's hook gets tokens with.
        from airflow_provider_sestek.hooks.sestek import SestekHook

        monkeypatch.setenv(name, value)
        hook = SestekHook()
        assert hook.get_token("training").startswith("emu-")
        assert hook.get_token("inference").startswith("emu-")
    finally:
        assert cli.stop() == 0


def test_cli_conn_id_and_shell_quoting() -> None:
    # A secret with a single quote survives the shell quoting of both lines.
    cli = _Cli("--port", "0", "--conn-id", "sestek_local", "--client", "train-client:o'brien")
    try:
        add_words = shlex.split(cli.lines[1])
        assert add_words[3] == "sestek_local"
        assert json.loads(add_words[5])["password"] == "o'brien"
        name, _, value = shlex.split(cli.lines[2])[1].partition("=")
        assert name == "AIRFLOW_CONN_SESTEK_LOCAL"
        assert json.loads(value) == json.loads(add_words[5])
    finally:
        assert cli.stop() == 0


def test_cli_quiet_prints_the_listening_line_only() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", "0", "--quiet", "--client", "c:s3cr3t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Sestek emulator listening on http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == ""  # nothing after the listening line: no connection line, so no secret


def test_cli_port_taken_fails_cleanly() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=REPO,
            timeout=30,
        )
    assert result.returncode == 2
    assert "failed to start" in result.stderr
    assert result.stdout == ""


def test_cli_prints_no_export_line_for_an_id_a_shell_cannot_name() -> None:
    # `export AIRFLOW_CONN_MY-CONN=...` is a bash error that echoes the value, secrets included.
    cli = _Cli("--port", "0", "--conn-id", "my-conn", lines=2)
    try:
        assert shlex.split(cli.lines[1])[3] == "my-conn"
    finally:
        assert cli.stop() == 0
    assert cli.proc.stdout is not None
    assert "export " not in cli.proc.stdout.read()  # nothing after the add line


@pytest.mark.parametrize(
    "args",
    [
        ["--token-lifetime", "nan"],
        ["--token-lifetime", "inf"],
        ["--token-lifetime", "0"],
        ["--seconds-per-step", "nan"],
        ["--seconds-per-step", "-inf"],
        ["--tenant", "a/b"],
        ["--conn-id", "x y"],
        ["--conn-id", ""],
    ],
)
def test_cli_refuses_values_the_emulator_or_provider_cannot_use(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(args)
    assert exit_info.value.code == 2
    assert args[0] in capsys.readouterr().err


# --- bad arguments: refused like every other (argparse's message, exit code 2), never a traceback ---


@pytest.mark.parametrize("port", ["-1", "65536", "99999"])
def test_cli_refuses_an_out_of_range_port_cleanly(port: str) -> None:
    # A port in use or a missing certificate ends with "failed to start" and exit code 2; a port that
    # cannot exist crashed with an OverflowError traceback from inside the event loop and exit code 1.
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", port],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "port" in result.stderr


@pytest.mark.parametrize("port", [-1, 65536])
def test_constructor_refuses_an_out_of_range_port(port: int) -> None:
    # Like every other bad constructor argument: ValueError before anything starts.
    with pytest.raises(ValueError, match="port"):
        SestekEmulator(port=port)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_sestek.testing", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("level", ["bogus", "5", ""])
def test_cli_refuses_an_unknown_log_level(level: str) -> None:
    result = _run("--log-level", level)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--log-level" in result.stderr


def test_cli_accepts_a_log_level_in_any_case(tmp_path: Path) -> None:
    ready = tmp_path / "url"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--log-level", "info", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        assert ready.read_text().strip().startswith("http://127.0.0.1:")
    finally:
        process.terminate()
        process.wait(20)


def test_cli_refuses_a_ready_file_in_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "url"
    result = _run("--ready-file", str(missing))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--ready-file" in result.stderr and "no-such-folder" in result.stderr


# --- safe defaults: loopback only unless asked, and numbers that make sense ---


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "ci-runner.example"])
def test_cli_refuses_a_reachable_host_without_allow_remote(host: str) -> None:
    result = _run("--host", host, "--port", "0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--allow-remote" in result.stderr and "no authentication" in result.stderr
    assert "listening" not in result.stdout


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "ci-runner.example"])
def test_constructor_refuses_a_reachable_host_without_allow_remote(host: str) -> None:
    with pytest.raises(ValueError, match="allow_remote=True"):
        SestekEmulator(host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_hosts_need_no_flag(host: str) -> None:
    SestekEmulator(host=host)  # constructed: nothing is bound until start()


def test_cli_on_every_interface_warns_that_the_admin_api_is_open() -> None:
    # --log-level ERROR hides every other log line: this warning is shown all the same.
    cli = _Cli("--host", "0.0.0.0", "--allow-remote", "--port", "0", "--log-level", "ERROR", "--quiet", lines=1)
    try:
        assert cli.url.startswith("http://127.0.0.1:")  # a wildcard bind is reached on loopback
    finally:
        assert cli.stop() == 0
    _, err = cli.proc.communicate(timeout=10)
    assert "WARNING" in err and "0.0.0.0" in err
    assert "/_emulator/ has no authentication" in err


def test_code_on_every_interface_logs_that_the_admin_api_is_open(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="airflow_provider_sestek.testing.emulator"):
        with SestekEmulator(host="0.0.0.0", allow_remote=True) as emu:
            assert emu.url.startswith("http://127.0.0.1:")
    [warning] = [r for r in caplog.records if "no authentication" in r.getMessage()]
    assert warning.levelname == "WARNING" and "0.0.0.0" in warning.getMessage()


def test_loopback_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"), SestekEmulator():
        pass
    assert [r for r in caplog.records if "no authentication" in r.getMessage()] == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("token_lifetime", float("nan")),
        ("token_lifetime", float("inf")),
        ("token_lifetime", 0),
        ("token_lifetime", -5),
        ("token_lifetime", "60"),
        ("seconds_per_step", float("nan")),
        ("seconds_per_step", float("-inf")),
        ("seconds_per_step", 0.0),
        ("steps_per_poll", 0),
        ("steps_per_poll", 1.5),
        ("steps_per_poll", True),
        ("max_recorded_requests", 0),
        ("max_recorded_requests", -1),
        ("max_recorded_requests", 10.0),
    ],
)
def test_constructor_refuses_non_finite_or_non_positive_numbers(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name) as refused:
        SestekEmulator(**{name: value})  # type: ignore[arg-type]
    assert repr(value) in str(refused.value)  # the message names the value given


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "nan"])
def test_cli_refuses_steps_per_poll_that_is_not_a_positive_whole_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--steps-per-poll", value])
    assert exit_info.value.code == 2
    assert "--steps-per-poll" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value"),
    [("token_lifetime", 10**400), ("seconds_per_step", 10**400), ("max_recorded_requests", 2**63)],
)
def test_constructor_refuses_numbers_too_large_for_the_machine_with_a_value_error(name: str, value: int) -> None:
    # These raised OverflowError (from math.isfinite and deque) instead of naming the argument.
    with pytest.raises(ValueError, match=name):
        SestekEmulator(**{name: value})  # type: ignore[arg-type]


def test_a_tiny_step_in_time_mode_reaches_the_end_instead_of_a_500() -> None:
    import requests

    with SestekEmulator(advance="time", seconds_per_step=1e-320) as emu:
        token = emu.issue_token()
        path = "/sestekai-api/api/external/generative-question-answering-trainings/"
        trained = requests.post(
            emu.url + path + "train",
            headers={"Authorization": f"Bearer {token}"},
            data={"modelId": "m", "projectName": "p"},
            files={"dataFiles": ("faq.txt", b"Q: a\nA: b")},
            timeout=10,
        )
        assert trained.status_code == 200
        answer = requests.get(emu.url + path + "m/progress", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["trainingStatus"] == "Completed"


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("host", "bound"), [("[::1]", "::1"), ("localhost.", "localhost")])
def test_bracketed_ipv6_and_a_trailing_dot_are_bound_as_the_loopback_they_name(host: str, bound: str) -> None:
    # Both passed the loopback check, then start() raised socket.gaierror instead of binding.
    if not _can_bind(bound):
        pytest.skip(f"this machine cannot bind {bound} at all")
    with SestekEmulator(host=host) as emulator:
        assert emulator.url.startswith(("http://[::1]:", "http://localhost:"))


def test_cli_does_not_echo_a_mistyped_client_secret() -> None:
    result = _run("--client", "train-client=Sup3rS3cret")
    assert result.returncode == 2 and "--client" in result.stderr
    assert "Sup3rS3cret" not in result.stderr


def test_cli_refuses_a_ready_file_that_is_a_folder_before_starting(tmp_path: Path) -> None:
    result = _run("--ready-file", str(tmp_path), "--port", "0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "is a folder" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no stray temporary file left beside it


def test_cli_max_recorded_requests_is_passed_to_the_emulator() -> None:
    assert build_parser().parse_args(["--max-recorded-requests", "7"]).max_recorded_requests == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--max-recorded-requests", "0"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("record_secrets", "false"),  # a string is truthy: it turned raw capture on
        ("allow_remote", "false"),
        ("record_secrets", 1),
        ("fail_models", "bad-bot"),  # split into single characters
        ("data_dir", ""),  # wrote ./uploads into the working folder
        ("tenant", 5),
        ("token_prefix", "emu-\r\n"),
    ],
)
def test_constructor_refuses_flags_and_texts_of_the_wrong_kind(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        SestekEmulator(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("ready", ["no-such-folder-{n}/", "/proc/sestek-ready-{n}"])
def test_cli_refuses_a_ready_file_it_cannot_write_before_starting(tmp_path: Path, ready: str) -> None:
    path = ready.format(n=os.getpid())
    result = _run("--ready-file", path if path.startswith("/") else f"{tmp_path}/{path}", "--port", "0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "--ready-file" in result.stderr
    assert "listening" not in result.stdout
