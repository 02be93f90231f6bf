"""SestekHook against the emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_sestek.api import CallbackConfig, TrainingStatus
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekAuthError,
    SestekConfigError,
    SestekModelNotPublished,
    SestekTrainingInProgress,
    SestekTransportError,
    SestekValidationError,
)
from airflow_provider_sestek.hooks.sestek import SestekConnectionConfig, SestekHook
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}


def hook(**kwargs: object) -> SestekHook:
    return SestekHook(**{**FAST, **kwargs})  # type: ignore[arg-type]


def api_requests(emu: SestekEmulator, endpoint: str) -> list:
    return [r for r in emu.requests if r.endpoint == endpoint]


# --- connection -----------------------------------------------------------------------------------


def test_json_env_var_connection(sestek_conn: SestekEmulator) -> None:
    cfg = SestekHook().config
    assert cfg.base_url == sestek_conn.url
    assert cfg.token_url == sestek_conn.identity_url + "/connect/token"
    assert cfg.tenant == sestek_conn.tenant
    assert cfg.client_id == sestek_conn.train_client[0]
    assert sestek_conn.train_client[1] not in repr(cfg)
    assert sestek_conn.inference_client[1] not in repr(cfg)


def test_uri_connection_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_URI",
        "sestek://my-client:my%2Fsecret@ai.example.com?identity_url=https%3A%2F%2Fid.example.com&tenant=acme&timeout=5",
    )
    cfg = SestekHook("sestek_uri").config
    assert cfg.base_url == "https://ai.example.com"  # a bare host means https
    assert cfg.token_url == "https://id.example.com/connect/token"
    assert (cfg.client_id, cfg.client_secret, cfg.tenant, cfg.read_timeout) == ("my-client", "my/secret", "acme", 5.0)


def test_identity_url_defaults_to_host() -> None:
    cfg = SestekConnectionConfig.from_connection("c", "https://ai.example.com", "id", "secret", {})
    assert cfg.token_url == "https://ai.example.com/connect/token"
    assert cfg.verify is True and cfg.connect_timeout == 10 and cfg.read_timeout == 60


@pytest.mark.parametrize(
    ("host", "login", "password", "extra", "field"),
    [
        (None, "id", "s", {}, "host"),
        ("https://h", None, "s", {}, "login"),
        ("https://h", "id", "", {}, "password"),
        ("https://h", "id", "s", {"identity_url": "ftp://id"}, "identity_url"),
        ("https://h", "id", "s", {"verify": "/no/such/ca.pem"}, "verify"),
        ("https://h", "id", "s", {"timeout": "soon"}, "timeout"),
        ("https://h", "id", "s", {"timeout": -1}, "timeout"),
        ("https://h", "id", "s", {"inference_client_id": "x"}, "inference_client_id"),
    ],
)
def test_bad_connection_names_the_field(host, login, password, extra, field) -> None:
    with pytest.raises(SestekConfigError, match=field) as info:
        SestekConnectionConfig.from_connection("c", host, login, password, extra)
    assert "s" != str(info.value)  # the message is about the field, never the secret itself


def test_verify_values(tmp_path: Path) -> None:
    import certifi

    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(certifi.where()).read_bytes())  # a real bundle: one TLS cannot load is refused
    for raw, expected in [("false", False), (False, False), ("true", True), (str(ca), str(ca))]:
        cfg = SestekConnectionConfig.from_connection("c", "https://h", "i", "s", {"verify": raw})
        assert cfg.verify == expected


# --- tokens ---------------------------------------------------------------------------------------


def test_token_cache_single_flight_threads(sestek_conn: SestekEmulator) -> None:
    tokens: list[str] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        tokens.append(hook().get_token())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens) == 20
    assert sestek_conn.counters["token_requests"] == 1


def test_token_cache_single_flight_coroutines(sestek_conn: SestekEmulator) -> None:
    async def main() -> list[str]:
        return await asyncio.gather(*(hook().aget_token() for _ in range(50)))

    tokens = asyncio.run(main())
    assert len(set(tokens)) == 1
    assert sestek_conn.counters["token_requests"] == 1
    # The sync side shares the same process-wide cache.
    assert hook().get_token() == tokens[0]
    assert sestek_conn.counters["token_requests"] == 1


def test_inference_client_gets_its_own_token(sestek_conn: SestekEmulator) -> None:
    h = hook()
    assert h.get_token("training") != h.get_token("inference")
    assert sestek_conn.counters["token_requests"] == 2


def test_token_refreshed_inside_the_margin_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 100 s token is reused until 10 s (10%) before its expiry, then refreshed: never only after it expired."""
    from types import SimpleNamespace

    from airflow_provider_sestek.api import responses, statuses
    from airflow_provider_sestek.hooks import flow

    now = [1_900_000_000.0]
    clock = SimpleNamespace(time=lambda: now[0])  # the client's clock; the emulator keeps its own
    monkeypatch.setattr(responses, "time", clock)
    monkeypatch.setattr(statuses, "time", clock)
    monkeypatch.setattr(flow, "time", clock)  # the expiry counts from when the token request was sent
    with SestekEmulator(token_lifetime=100) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
        first = hook().get_token()
        now[0] += 89.9  # 10.1 s left: outside the margin
        assert hook().get_token() == first
        assert emu.counters["token_requests"] == 1
        now[0] += 0.2  # 9.9 s left: inside the margin, still before expiry
        second = hook().get_token()
        assert second != first
        assert emu.counters["token_requests"] == 2


def test_401_refreshes_token_once(sestek_conn: SestekEmulator) -> None:
    h = hook()
    h.get_token()
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=401, body="empty", count=1))
    with pytest.raises(SestekApiError, match="404"):
        h.get_training_progress("never-trained")
    assert sestek_conn.counters["token_requests"] == 2
    assert len(api_requests(sestek_conn, "progress")) == 2


def test_persistent_401_is_an_auth_error(sestek_conn: SestekEmulator) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=401, body="empty", count=5))
    with pytest.raises(SestekAuthError, match="401"):
        hook().get_training_progress("faq-bot")
    assert len(api_requests(sestek_conn, "progress")) == 2  # first try + one after the refresh


def test_wrong_secret(monkeypatch: pytest.MonkeyPatch, emulator: SestekEmulator) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps({**json.loads(connection_json(emulator)), "password": "wrong-pw-123"})
    )
    with pytest.raises(SestekAuthError) as info:
        hook().get_token()
    assert "invalid_client" in str(info.value) and "Client Secret" in str(info.value)
    assert "wrong-pw-123" not in str(info.value)
    assert len(api_requests(emulator, "token")) == 1  # a refusal is not retried


def test_wrong_scope_is_explained(monkeypatch: pytest.MonkeyPatch, emulator: SestekEmulator) -> None:
    inference_id, inference_secret = emulator.inference_client
    conn = json.loads(connection_json(emulator))
    conn.update(login=inference_id, password=inference_secret)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    with pytest.raises(SestekAuthError, match="SestekAI_External"):
        hook().get_training_progress("faq-bot")


def test_token_expiry_counts_from_the_request_not_the_slow_answer(emulator_factory, monkeypatch) -> None:
    from airflow_provider_sestek.hooks.sestek import TOKEN_CACHE

    emu = emulator_factory(token_lifetime=4)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    emu.add_fault(Fault(endpoint="token", kind="delay", delay=1.0, when="after"))  # issued, then answered late
    sync_hook = hook()
    sync_hook.get_token()
    (issued,) = api_requests(emu, "token")
    cached = TOKEN_CACHE.get(sync_hook.config.token_key("training"))
    assert cached is not None
    # The server's clock started at arrival; an expiry counted from the late answer would outlive the token.
    assert cached.expires_at <= issued.time + 4


# --- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_get_retried_on_transient_status(sestek_conn: SestekEmulator, status: int) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=status, count=2))
    with pytest.raises(SestekApiError, match="404"):  # got through to the real answer
        hook().get_training_progress("unknown-model")
    assert len(api_requests(sestek_conn, "progress")) == 3


def test_retry_after_is_honoured(sestek_conn: SestekEmulator) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=429, retry_after=1, count=1))
    with pytest.raises(SestekApiError, match="404"):
        hook().get_training_progress("unknown-model")
    first, second = api_requests(sestek_conn, "progress")
    assert second.time - first.time >= 0.9


def test_retries_are_bounded(sestek_conn: SestekEmulator) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=503, count=100))
    with pytest.raises(SestekApiError, match="503"):
        hook(retry_limit=2).get_training_progress("faq-bot")
    assert len(api_requests(sestek_conn, "progress")) == 3


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    import logging
    import warnings

    from airflow_provider_sestek.hooks.retry import RetryPolicy

    policy = RetryPolicy(limit=100, delay=1.0, max_delay=5.0, deadline=1e6)
    reset = SestekTransportError("reset")

    def delays_of_attempt(attempt: int) -> list[float]:
        samples = []
        for _ in range(100):
            retries = policy.start("progress", True, logging.getLogger("test"))
            samples.append([retries.after(reset) for _ in range(attempt)][-1])
        return samples

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated tenacity arguments, whichever tenacity is installed
        for attempt, low, high in [(1, 1, 2), (2, 2, 3), (3, 4, 5), (4, 5, 5), (9, 5, 5)]:
            delays = delays_of_attempt(attempt)
            assert low <= min(delays) and max(delays) <= high, (attempt, min(delays), max(delays))
    assert len(set(delays_of_attempt(1))) > 1  # jittered, so many clients do not retry in step
    # Retry-After wins over a shorter backoff.
    busy = SestekApiError(method="GET", endpoint="progress", status=429, message="busy", retry_after=30)
    assert policy.start("progress", True, logging.getLogger("test")).after(busy) == 30
    # What is not worth another attempt is raised again at once.
    refused = SestekApiError(method="POST", endpoint="train", status=502, message="bad gateway")
    with pytest.raises(SestekApiError, match="bad gateway"):
        policy.start("train", False, logging.getLogger("test")).after(refused)


def test_retry_deadline_bounds_total_time(sestek_conn: SestekEmulator) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=503, retry_after=1, count=100))
    start = time.monotonic()
    with pytest.raises(SestekApiError, match="503"):
        hook(retry_limit=50, retry_deadline=1.5).get_training_progress("faq-bot")
    assert len(api_requests(sestek_conn, "progress")) <= 3
    assert time.monotonic() - start < 10


def test_read_timeout_is_retried_for_get(monkeypatch: pytest.MonkeyPatch, emulator: SestekEmulator) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, timeout=0.5))
    emulator.add_fault(Fault(endpoint="progress", kind="delay", delay=1.5, count=1))
    with pytest.raises(SestekApiError, match="404"):
        hook().get_training_progress("unknown-model")
    emulator.add_fault(Fault(endpoint="progress", kind="delay", delay=1.5, count=10))
    with pytest.raises(SestekTransportError, match="request deadline"):
        hook(retry_limit=1).get_training_progress("unknown-model")


def test_connection_refused_is_retried_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with SestekEmulator() as emu:
        conn = connection_json(emu)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", conn)  # the emulator is gone: nothing listens
    with pytest.raises(SestekTransportError) as info:
        hook(retry_limit=1).get_token()
    assert info.value.maybe_sent is False


def test_html_gateway_page(sestek_conn: SestekEmulator) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=502, body="html", count=10))
    with pytest.raises(SestekApiError) as info:
        hook(retry_limit=1).get_training_progress("faq-bot")
    assert info.value.status == 502 and "<" not in info.value.message


def test_malformed_body(sestek_conn: SestekEmulator) -> None:
    # An unreadable 200 of a GET is asked for again (like any transient fault); when it persists, it is named.
    sestek_conn.add_fault(Fault(endpoint="progress", kind="malformed", count=None))
    with pytest.raises(SestekApiError, match="not JSON"):
        hook(retry_limit=2).get_training_progress("faq-bot")
    assert len(api_requests(sestek_conn, "progress")) == 3


# --- submit ---------------------------------------------------------------------------------------


@pytest.fixture
def data_files(tmp_path: Path) -> list[Path]:
    a = tmp_path / "faq.txt"
    a.write_text("Q: What are your opening hours?\nA: We are open from 9 to 17 on weekdays.\n")
    b = tmp_path / "manual.pdf"
    b.write_bytes(bytes(range(256)) * 4000)
    return [a, b]


def test_submit_multipart_exact(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    callback = CallbackConfig("https://cb.example.com/hook", "https://id.example.com", "cb-client", "cb-secret")
    experiment = hook().submit_training(
        "faq-bot",
        "Support FAQ",
        data_files=[str(p) for p in data_files],
        data_urls=["https://example.com/a.txt", "https://example.com/b.txt"],
        callback=callback,
    )
    assert experiment["name"] == "faq-bot" and experiment["description"] == "Support FAQ"
    (train,) = api_requests(sestek_conn, "train")
    assert train.form == {
        "modelId": ["faq-bot"],
        "projectName": ["Support FAQ"],
        "dataUrls": ["https://example.com/a.txt", "https://example.com/b.txt"],
        "callbackAddress": ["https://cb.example.com/hook"],
        "callbackIdentityAddress": ["https://id.example.com"],
        "callbackClientId": ["cb-client"],
        "callbackClientSecret": [sestek_conn.redacted("cb-secret")],
    }
    received = [(f.field, f.filename, f.content_type, f.size, f.sha256) for f in train.files]
    expected = [
        ("dataFiles", p.name, ct, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p, ct in zip(data_files, ["text/plain", "application/pdf"], strict=True)
    ]
    assert received == expected
    assert sestek_conn.counters["trainings_created"] == 1


def test_submit_accepts_object_storage_paths(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    hook().submit_training("faq-bot", "p", data_files=[f"file://{data_files[0]}"])
    (train,) = api_requests(sestek_conn, "train")
    assert train.files[0].filename == "faq.txt"
    assert train.files[0].sha256 == hashlib.sha256(data_files[0].read_bytes()).hexdigest()


def test_submit_in_progress_is_reported(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    h = hook()
    h.submit_training("faq-bot", "p", data_files=[str(data_files[0])])
    with pytest.raises(SestekTrainingInProgress, match="still in progress"):
        h.submit_training("faq-bot", "p", data_files=[str(data_files[0])])
    assert sestek_conn.counters["trainings_created"] == 1


def test_submit_not_repeated_when_it_may_have_landed(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    sestek_conn.add_fault(Fault(endpoint="train", kind="drop", when="after", count=1))
    with pytest.raises(SestekTransportError) as info:
        hook().submit_training("faq-bot", "p", data_files=[str(data_files[0])])
    assert info.value.maybe_sent is True
    assert len(api_requests(sestek_conn, "train")) == 1
    assert sestek_conn.counters["trainings_created"] == 1
    sestek_conn.add_fault(Fault(endpoint="train", kind="status", status=502, count=1))
    with pytest.raises(SestekApiError, match="502"):
        hook().submit_training("other-bot", "p", data_files=[str(data_files[0])])
    assert len(api_requests(sestek_conn, "train")) == 2


def test_submit_retried_after_429(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    sestek_conn.add_fault(Fault(endpoint="train", kind="status", status=429, count=1))
    hook().submit_training("faq-bot", "p", data_files=[str(p) for p in data_files])
    trains = api_requests(sestek_conn, "train")
    assert len(trains) == 2 and sestek_conn.counters["trainings_created"] == 1
    assert trains[1].files[1].size == data_files[1].stat().st_size  # the files were re-streamed in full


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"model_id": "Bad_Id"}, "model_id", "lowercase"),
        ({"model_id": "x" * 64}, "model_id", "at most 63"),
        ({"project_name": " "}, "project_name", "non-empty"),
        ({"data_files": [], "data_urls": []}, "data_files", "at least one"),
        ({"data_files": ["/no/such/file.txt"]}, "data_files[0]", "does not exist"),
        ({"data_files": ["{tmp}"]}, "data_files[0]", "is a directory"),
        ({"data_files": ["https://example.com/x.txt"]}, "data_files[0]", "data_urls"),
        ({"data_urls": ["ftp://example.com/x"]}, "data_urls[0]", "http"),
        ({"callback": CallbackConfig("mailto:me")}, "callback_address", "http"),
    ],
)
def test_validation_before_any_request(
    sestek_conn: SestekEmulator, tmp_path: Path, kwargs: dict, field: str, rule: str
) -> None:
    args = {"model_id": "faq-bot", "project_name": "p", "data_urls": ["https://example.com/d.txt"], **kwargs}
    if args.get("data_files") == ["{tmp}"]:
        args["data_files"] = [str(tmp_path)]
    with pytest.raises(SestekValidationError) as info:
        hook().submit_training(**args)
    assert field in str(info.value) and rule in str(info.value)
    assert sestek_conn.requests == []


def test_special_file_is_rejected(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SestekValidationError, match="not a regular file"):
        hook().submit_training("faq-bot", "p", data_files=[str(fifo)])
    assert sestek_conn.requests == []


def test_unreadable_file_is_rejected(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    f = tmp_path / "secret.txt"
    f.write_text("x")
    f.chmod(0)
    with pytest.raises(SestekValidationError, match="not readable"):
        hook().submit_training("faq-bot", "p", data_files=[str(f)])


# --- progress and inference -----------------------------------------------------------------------


def test_progress_sync_and_async_agree(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    h = hook()
    h.submit_training("faq-bot", "p", data_files=[str(data_files[0])])
    first = h.get_training_progress("faq-bot")
    second = asyncio.run(h.aget_training_progress("faq-bot"))
    assert first.training_status is TrainingStatus.INITIALIZED
    assert second.training_status is TrainingStatus.PENDING_TRAINING
    assert second.percent >= first.percent


def test_ask_published_model(sestek_conn: SestekEmulator, data_files: list[Path]) -> None:
    h = hook()
    h.submit_training("faq-bot", "p", data_files=[str(data_files[0])])
    with pytest.raises(SestekModelNotPublished):
        h.ask("faq-bot", "What are your opening hours?")
    while not h.get_training_progress("faq-bot").is_published:
        pass
    answer = h.ask("faq-bot", ["What are your opening hours?"])["result"][0]
    assert "9 to 17" in answer["answer"]
    assert answer["docs"][0]["source"] == "faq.txt"
    infer = api_requests(sestek_conn, "inference")[-1]
    assert infer.path == f"/published/{sestek_conn.tenant}-faq-bot/v1/text/question-answering/inference"


def test_ask_needs_tenant(monkeypatch: pytest.MonkeyPatch, emulator: SestekEmulator) -> None:
    conn = json.loads(connection_json(emulator))
    del conn["extra"]["tenant"]
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    with pytest.raises(SestekConfigError, match="tenant"):
        hook().ask("faq-bot", "hi")
    assert emulator.requests == []


# --- test_connection ------------------------------------------------------------------------------


def test_test_connection_ok(sestek_conn: SestekEmulator) -> None:
    ok, message = SestekHook().test_connection()
    assert ok, message
    assert sestek_conn.url in message and "Inference client token obtained" in message


def test_test_connection_wrong_secret(monkeypatch: pytest.MonkeyPatch, emulator: SestekEmulator) -> None:
    conn = json.loads(connection_json(emulator))
    conn["password"] = "not-the-secret-999"
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    ok, message = SestekHook().test_connection()
    assert not ok
    assert "invalid_client" in message and "Client Secret" in message
    assert "not-the-secret-999" not in message


def test_test_connection_bad_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps({"conn_type": "sestek", "login": "a", "password": "b"})
    )
    ok, message = SestekHook().test_connection()
    assert not ok and "host" in message


def test_multipart_body_matches_requests_toolbelt(tmp_path: Path) -> None:
    """Our streaming body is byte for byte what requests-toolbelt's MultipartEncoder sends (the reference)."""
    from requests_toolbelt import MultipartEncoder

    from airflow_provider_sestek.hooks.upload import UPLOAD_BLOCK_SIZE, MultipartBody

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (UPLOAD_BLOCK_SIZE // 100))
    small = tmp_path / "ünï code.txt"
    small.write_text("héllo\n")

    def fields(stack: list) -> list:
        a, b = big.open("rb"), small.open("rb")
        stack += [a, b]
        return [
            ("modelId", "faq-bot"),
            ("projectName", "Projé"),
            ("dataFiles", (big.name, a, "application/octet-stream")),
            ("dataFiles", (small.name, b, "text/plain")),
            ("dataUrls", "https://example.com/a.txt"),
        ]

    opened: list = []
    expected = MultipartEncoder(fields=fields(opened), boundary="b0und4ry").to_string()
    body = MultipartBody(fields(opened), boundary="b0und4ry")
    chunks = []
    while chunk := body.read(8192):
        chunks.append(chunk)
    for handle in opened:
        handle.close()
    assert b"".join(chunks) == expected
    assert body.len == len(expected)
    assert max(len(c) for c in chunks) <= 2 * UPLOAD_BLOCK_SIZE  # streamed in blocks, never whole
