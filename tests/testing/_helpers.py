"""
Plain-HTTP helpers for the emulator's own tests.

The API paths are spelled out here again on purpose: these tests check the emulator against the
documented contract, not against the emulator's (or the client's) own constants.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

from airflow_provider_sestek.testing import CallbackAttempt, SestekEmulator

TOKEN = "/connect/token"
TRAIN = "/sestekai-api/api/external/generative-question-answering-trainings/train"

FAQ = (
    "Q: How do I reset my password?\n"
    "A: Open Settings, choose Security and click Reset password. A link is e-mailed to you.\n"
    "\n"
    "Q: What are your opening hours?\n"
    "A: The support desk is open from 9:00 to 17:00 on weekdays.\n"
    "\n"
    "Q: Can I export my call recordings?\n"
    "A: Yes. Recordings can be exported as WAV files from the Archive page.\n"
    "\n"
    "Our company was founded in Istanbul and builds speech technology.\n"
)


def progress_path(model_id: str) -> str:
    return f"/sestekai-api/api/external/generative-question-answering-trainings/{model_id}/progress"


def inference_path(tenant: str, model_id: str) -> str:
    return f"/published/{tenant}-{model_id}/v1/text/question-answering/inference"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_token(session: requests.Session, emu: SestekEmulator, inference: bool = False) -> str:
    client_id, secret = emu.inference_client if inference else emu.train_client
    response = session.post(
        emu.identity_url + TOKEN,
        data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"},
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def train(
    session: requests.Session,
    emu: SestekEmulator,
    token: str,
    model_id: str | None = "model-1",
    *,
    project_name: str | None = "Project",
    files: Iterable[tuple[str, bytes]] = (("faq.txt", FAQ.encode()),),
    urls: Iterable[str] = (),
    timeout: float = 10,
    form: Mapping[str, str] | None = None,
    **extra: str,
) -> requests.Response:
    data: list[tuple[str, str]] = []
    if model_id is not None:
        data.append(("modelId", model_id))
    if project_name is not None:
        data.append(("projectName", project_name))
    data.extend(("dataUrls", url) for url in urls)
    data.extend({**(form or {}), **extra}.items())
    parts = [("dataFiles", (name, content, "text/plain")) for name, content in files]
    if not parts:
        # requests only sends multipart when there is a file part; force multipart anyway.
        parts = [("unused", ("", b"", "application/octet-stream"))]
    return session.post(emu.url + TRAIN, headers=bearer(token), data=data, files=parts, timeout=timeout)


def poll(session: requests.Session, emu: SestekEmulator, token: str, model_id: str = "model-1") -> dict[str, Any]:
    response = session.get(emu.url + progress_path(model_id), headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def poll_until(
    session: requests.Session,
    emu: SestekEmulator,
    token: str,
    model_id: str,
    done: Callable[[dict[str, Any]], bool],
    limit: int = 60,
) -> list[dict[str, Any]]:
    answers = []
    for _ in range(limit):
        answers.append(poll(session, emu, token, model_id))
        if done(answers[-1]):
            return answers
    raise AssertionError(f"not done after {limit} polls: {answers[-3:]}")


def completed(answer: dict[str, Any]) -> bool:
    return str(answer["trainingStatus"]).lower() == "completed"


def running(answer: dict[str, Any]) -> bool:
    return completed(answer) and str(answer["inferenceStatus"]).lower() == "running"


def ask(
    session: requests.Session, emu: SestekEmulator, token: str, model_id: str, *queries: str, cache: bool = False
) -> requests.Response:
    payload = {
        "prompt": "Answer from the documents.",
        "inputs": [
            {"query": q, "chat_history": [], "use_semantic_cache": cache, "semantic_cache_threshold": 0.95}
            for q in queries
        ],
    }
    return session.post(emu.url + inference_path(emu.tenant, model_id), headers=bearer(token), json=payload, timeout=10)


def callback_attempts(emu: SestekEmulator, timeout: float = 10.0) -> list[CallbackAttempt]:
    """The emulator's callback attempts once there is one (callbacks go out on threads of their own)."""
    deadline = time.monotonic() + timeout
    while not emu.callback_attempts and time.monotonic() < deadline:
        time.sleep(0.02)
    return emu.callback_attempts
