"""The emulator as a separate process (CLI, admin client, memory), over HTTPS, and its import cost."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_sestek.testing import EmulatorClient, Fault, SestekEmulator

from ._helpers import TOKEN, TRAIN, bearer, progress_path, sha256

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class _Process:
    def __init__(self, *args: str, ready_file: Path | None = None) -> None:
        command = [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", "0", *args]
        if ready_file is not None:
            command += ["--ready-file", str(ready_file)]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().strip()
        assert self.line.startswith("Sestek emulator listening on http://127.0.0.1:"), (
            self.line,
            self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else "",
        )
        self.url = self.line.rsplit(" ", 1)[1]

    def peak_rss_kib(self) -> int:
        # VmHWM is the process's high-water mark of resident memory.
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _token(http: requests.Session, url: str, client_id: str = "train-client", secret: str = "train-secret") -> str:
    response = http.post(
        url + TOKEN, data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_cli_serves_is_controllable_and_stops_on_sigterm(tmp_path: Path, http: requests.Session) -> None:
    ready = tmp_path / "ready.txt"
    process = _Process(
        "--tenant",
        "globex",
        "--client",
        "c1:s1",
        "--inference-client",
        "i1:s2",
        "--token-prefix",
        "cli-",
        "--status-case",
        "lower",
        "--fail-model",
        "doomed",
        ready_file=ready,
    )
    try:
        assert ready.read_text().strip() == process.url
        token = _token(http, process.url, "c1", "s1")
        assert token.startswith("cli-")
        admin = EmulatorClient(process.url)
        admin.wait_until_ready()

        admin.add_fault(Fault(endpoint="progress", status=429, retry_after=2))
        assert admin.faults() == [Fault(endpoint="progress", status=429, retry_after=2)]
        files = {"dataFiles": ("a.txt", b"Q: Where?\nA: Here.")}
        assert http.post(
            process.url + TRAIN, headers=bearer(token), data={"modelId": "m", "projectName": "P"}, files=files
        ).ok
        throttled = http.get(process.url + progress_path("m"), headers=bearer(token))
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
        assert http.get(process.url + progress_path("m"), headers=bearer(token)).json()["trainingStatus"] == (
            "initialized"
        )

        state = admin.state()
        assert state["tenant"] == "globex"
        assert state["counters"]["trainings_created"] == 1
        assert state["counters"]["progress_polls"] == 2
        assert state["trainings"]["m"]["status"] == "pendingtraining"
        assert state["request_count"] == 4
        assert state["fail_models"] == ["doomed"]
        recorded = admin.requests()
        assert [r["endpoint"] for r in recorded] == ["token", "train", "progress", "progress"]
        assert [r["status"] for r in recorded] == [200, 200, 429, 200]
        assert recorded[1]["form"] == {"modelId": ["m"], "projectName": ["P"]}
        assert recorded[1]["files"][0]["sha256"] == sha256(b"Q: Where?\nA: Here.")
        assert [r["endpoint"] for r in admin.requests(endpoint="progress", since=2)] == ["progress", "progress"]

        admin.add_fault(Fault(endpoint="any", status=500))
        admin.clear_faults()
        assert admin.faults() == []
        admin.set_lifecycle(model_id="quick", statuses=["Initialized", "Completed"])
        admin.fail_model("m")
        admin.reset()
        state = admin.state()
        assert state["trainings"] == {} and state["request_count"] == 0
        assert set(state["counters"].values()) == {0}
        with pytest.raises(RuntimeError):
            admin.set_lifecycle(statuses=[])
    finally:
        assert process.terminate() == 0


def test_cli_hostile_faults_and_foreign_requests_through_the_admin_client(http: requests.Session) -> None:
    process = _Process()
    try:
        admin = EmulatorClient(process.url)
        admin.wait_until_ready()
        admin.add_fault(Fault(endpoint="token", kind="redirect"))
        foreign_url = admin.state()["foreign_url"]
        assert foreign_url == admin.foreign_url() and foreign_url != process.url
        form = {"client_id": "train-client", "client_secret": "train-secret", "grant_type": "client_credentials"}
        assert http.post(process.url + TOKEN, data=form).json()["access_token"] == "foreign-token"
        [leak] = admin.foreign_requests()
        # The leak is recorded, the secret is not: the admin API (open to anyone on the port) shows a marker.
        assert leak["form"]["client_secret"] == ["<redacted>"] and leak["status"] == 200
        assert "train-secret" not in json.dumps([admin.foreign_requests(), admin.requests(), admin.state()])
        assert admin.requests()[-1]["fault"] == "redirect:before"

        admin.add_fault(Fault(endpoint="token", kind="odd_token", value="tök€n"))
        odd = http.post(process.url + TOKEN, data=form).json()["access_token"]
        admin.add_fault(Fault(endpoint="progress", kind="non_finite", value="Infinity"))
        assert http.get(process.url + progress_path("m"), headers=bearer(_token(http, process.url))).text.startswith(
            '{"percent":Infinity,'
        )
        admin.add_fault(Fault(kind="raw", status=418, raw_body="<teapot/>", content_type="text/xml"))
        teapot = http.get(process.url + progress_path("m"))
        assert (teapot.status_code, teapot.text, teapot.headers["Content-Type"]) == (418, "<teapot/>", "text/xml")
        admin.add_fault(Fault(endpoint="token", kind="drip", delay=0.01))
        assert http.post(process.url + TOKEN, data=form, timeout=10).json()["access_token"].startswith("emu-")
        assert odd == "tök€n"

        admin.reset()
        assert admin.foreign_requests() == [] and admin.state()["foreign_requests"] == []

        # An endless body still dripping must not keep SIGTERM from ending the process (terminate waits 5 s).
        admin.add_fault(Fault(endpoint="token", kind="drip", delay=0.05, endless=True))
        dripping = http.post(process.url + TOKEN, data=form, stream=True, timeout=10)
        assert dripping.raw.read(2) == b"  "
    finally:
        assert process.terminate() == 0


def test_streamed_upload_keeps_memory_flat(tmp_path: Path, http: requests.Session) -> None:
    """A 200 MiB upload (Content-Length) and a 64 MiB one (chunked) must not grow the server's memory."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the emulator's peak RSS")
    from requests_toolbelt import MultipartEncoder

    big = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with big.open("wb") as out:
        for index in range(200):
            piece = block[index:] + block[:index]
            out.write(piece)
            digest.update(piece)
    expected = digest.hexdigest()
    process = _Process()
    try:
        token = _token(http, process.url)
        # Warm-up upload: loads every code path once, so the baseline already includes it.
        warm = http.post(
            process.url + TRAIN,
            headers=bearer(token),
            data={"modelId": "warm", "projectName": "P"},
            files={"dataFiles": ("warm.bin", os.urandom(4 << 20))},
        )
        assert warm.ok
        baseline = process.peak_rss_kib()

        with big.open("rb") as source:
            encoder = MultipartEncoder(
                fields=[
                    ("modelId", "big"),
                    ("projectName", "P"),
                    ("dataFiles", ("big.bin", source, "application/octet-stream")),
                ]
            )
            response = http.post(
                process.url + TRAIN,
                headers={**bearer(token), "Content-Type": encoder.content_type},
                data=encoder,
                timeout=120,
            )
        assert response.status_code == 200, response.text

        boundary = "memtest"

        def chunked_body() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="modelId"\r\n\r\nchunked\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="projectName"\r\n\r\nP\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="dataFiles"; filename="c.bin"\r\n\r\n'
            ).encode()
            for _ in range(64):
                yield block
            yield f"\r\n--{boundary}--\r\n".encode()

        response = http.post(
            process.url + TRAIN,
            headers={**bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
            data=chunked_body(),
            timeout=120,
        )
        assert response.status_code == 200, response.text
        growth_mib = (process.peak_rss_kib() - baseline) / 1024

        files = {r["model_id"]: r["files"] for r in EmulatorClient(process.url).requests(endpoint="train")}
        assert files["big"][0]["size"] == 200 << 20
        assert files["big"][0]["sha256"] == expected
        assert files["chunked"][0]["size"] == 64 << 20
        assert files["chunked"][0]["sha256"] == sha256(block * 64)
        assert growth_mib < 32, f"emulator peak RSS grew by {growth_mib:.1f} MiB during the uploads"
    finally:
        assert process.terminate() == 0


def test_cli_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sestek.testing", "--client", "no-secret"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ID:SECRET" in result.stderr


def test_https_with_self_signed_certificate(tmp_path: Path, http: requests.Session) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command line not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with SestekEmulator(certfile=cert, keyfile=key) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            http.post(emu.identity_url + TOKEN, data={})
        response = http.post(
            emu.identity_url + TOKEN,
            data={"client_id": "train-client", "client_secret": "train-secret", "grant_type": "client_credentials"},
            verify=str(cert),
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        assert http.get(emu.url + progress_path("x"), headers=bearer(token), verify=str(cert)).status_code == 404
        admin = EmulatorClient(emu.url, ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert admin.state()["counters"]["token_requests"] == 1  # the rejected handshake never became a request
        # A plain-HTTP client on the TLS port gets no answer, and the server keeps working.
        with pytest.raises(requests.ConnectionError):
            http.get(emu.url.replace("https", "http") + "/connect/token", timeout=2)
        assert admin.state()["url"] == emu.url


def test_plugin_import_never_imports_airflow() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_sestek.testing.pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def _modules_after(code: str, wanted: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the loaded modules ``wanted`` (an expression on ``m``) selects."""
    script = f"import sys\n{code}\nprint(sorted(m for m in sys.modules if {wanted}))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60, check=True
    )
    return list(ast.literal_eval(result.stdout.strip()))


def test_pytest_plugin_does_not_import_aiohttp() -> None:
    # The plugin loads in every pytest run of every project with the provider installed; the server
    # underneath (aiohttp) is only imported when an emulator starts.
    code = (
        "import airflow_provider_sestek.testing.pytest_plugin\n"
        "from airflow_provider_sestek.testing import Fault, SestekEmulator\n"
        "emulator = SestekEmulator()\n"
        # Everything that works without a server works without aiohttp: faults, snapshots, reset.
        "emulator.add_fault(Fault(endpoint='progress', status=503))\n"
        "emulator.reset(); emulator.state(); emulator.trainings"
    )
    assert _modules_after(code, "m.split('.')[0] in ('aiohttp', 'asyncio')") == []


def test_import_is_light() -> None:
    """
    Importing the emulator package loads the standard library and the package only: no Airflow, aiohttp,
    requests, pytest or urllib.request (each costs from milliseconds to seconds, on every import of the plugin).
    How long the import takes is a benchmark's business (``make bench``), not a timed test's.
    """
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_sestek.testing\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
        "print('urllib.request' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60, check=True
    )
    top_level, urllib_request = result.stdout.splitlines()
    assert urllib_request == "False"  # the data-URL fetcher imports it when a training first asks
    loaded = set(top_level.split())
    assert "airflow_provider_sestek" in loaded
    heavy = {"airflow", "aiohttp", "requests", "urllib3", "pytest", "pendulum", "sqlalchemy"}
    assert not loaded & heavy, sorted(loaded & heavy)
    third_party = {m for m in loaded - {"airflow_provider_sestek"} if m not in sys.stdlib_module_names}
    assert not third_party, sorted(third_party)
