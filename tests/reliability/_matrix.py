"""
The fault matrix: which faults are injected where, and what the task must do about each.

One place defines the cases, the expected outcome of each, how the emulator is told to misbehave, and how
the results are rendered as a table (printed at the end of the test session and kept in RELIABILITY.md, which
``test_reliability_doc_carries_the_matrix`` keeps in sync with this file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from airflow_provider_sestek.testing import Fault

#: Read timeout (connection extra ``timeout``) of the read-timeout cases; the emulator answers later than this.
READ_TIMEOUT = 1.0
#: How late the emulator answers in a read-timeout case.
TIMEOUT_DELAY = READ_TIMEOUT + 2.0

FAULTS: dict[str, str] = {
    "429": "429 + `Retry-After: 1`",
    "500": "500 (ABP error envelope)",
    "502": "502 Bad Gateway",
    "503": "503 Service Unavailable",
    "504": "504 Gateway Timeout",
    "drop": "dropped connection (no answer)",
    "timeout": f"read timeout (answer after {TIMEOUT_DELAY:.0f} s, timeout {READ_TIMEOUT:.0f} s)",
    "malformed": "malformed JSON in a 200",
    "html": "HTML error page (nginx 502)",
    "401": "401: revoked token (API) / invalid_client (token service)",
    "404": "404 (from progress: right after submit)",
}

PHASES: dict[str, str] = {
    "token": "first token request of each process (worker, triggerer, sensor)",
    "lookup": "progress look-up before the submit (is this model already training?)",
    "submit": "train POST; 5xx/drop/timeout/malformed/HTML arrive *after* the training was created",
    "submit-lost": "train POST; the fault arrives *before* anything was created",
    "progress": "first progress poll after the submit",
}

MODES: dict[str, str] = {
    "sync": "SestekTrainOperator, waits in the worker",
    "deferrable": "SestekTrainOperator(deferrable=True), waits in the trigger",
    "sensor": "SestekTrainOperator(wait_for_completion=False) >> SestekTrainingSensor (poke)",
}

#: Faults where "was the training created?" is a real question; the others are answered before any work.
_MAYBE_PROCESSED = ("500", "502", "503", "504", "drop", "timeout", "malformed", "html")

_ENDPOINT = {"token": "token", "lookup": "progress", "submit": "train", "submit-lost": "train", "progress": "progress"}


def cases() -> list[tuple[str, str, str]]:
    """Every (fault, phase, mode) combination that is tested."""
    return [
        (fault, phase, mode)
        for fault in FAULTS
        for phase in PHASES
        for mode in MODES
        if (phase != "submit-lost" or fault in _MAYBE_PROCESSED)
        # 404 is the normal answer of the look-up (no such training yet): not a fault there.
        and (phase != "lookup" or fault != "404")
    ]


def case_id(fault: str, phase: str, mode: str) -> str:
    return f"{fault}-{phase}-{mode}"


@dataclass(frozen=True)
class Expected:
    """
    What a case must end in.

    :param state: final state of the task under test (the sensor in ``sensor`` mode).
    :param trainings: trainings the server created.
    :param message: substrings the failure message must contain.
    :param submit_state: in ``sensor`` mode, the final state of the submitting task.
    """

    state: str
    trainings: int
    message: tuple[str, ...] = ()
    submit_state: str = "success"

    def describe(self) -> str:
        if self.state == "success":
            return f"success, {self.trainings} training"
        if self.submit_state == "failed":
            return f"submit task fails, {self.trainings} trainings"
        what = "fails" if self.trainings == 0 else "fails (training goes on)"
        return f"{what}, {self.trainings} training{'s' if self.trainings != 1 else ''}"


def expected(fault: str, phase: str, mode: str) -> Expected:
    """
    The designed behaviour. Every transient fault ends in success with exactly one training; a refused
    client (401 ``invalid_client`` from the token service) and a 404 from the token service or the train
    endpoint (wrong URL) fail at once, with a message naming the endpoint and the status, before anything is
    submitted.
    """
    token_refused = {
        "401": ("Token request to", "HTTP 401 invalid_client", "Check the Client ID and Client Secret"),
        "404": ("Token request to", "HTTP 404", "identity URL"),
    }
    if phase == "token" and fault in token_refused:
        if mode == "sensor":  # the upstream task submitted; the sensor's own token request is refused
            return Expected("failed", 1, token_refused[fault])
        return Expected("failed", 0, token_refused[fault])
    if phase == "submit" and fault == "404":
        message = ("generative-question-answering-trainings/train answered HTTP 404",)
        if mode == "sensor":
            return Expected("upstream_failed", 0, message, submit_state="failed")
        return Expected("failed", 0, message)
    return Expected("success", 1)


def faults(fault: str, phase: str) -> list[Fault]:
    """The emulator faults that produce ``fault`` in ``phase`` (each delivered once)."""
    endpoint = _ENDPOINT[phase]
    when = "after" if phase == "submit" and fault in _MAYBE_PROCESSED else "before"
    if fault == "429":
        made = Fault(endpoint=endpoint, status=429, retry_after=1, when=when)
    elif fault in ("500", "502", "503", "504"):
        made = Fault(endpoint=endpoint, status=int(fault), when=when)
    elif fault == "drop":
        made = Fault(endpoint=endpoint, kind="drop", when=when)
    elif fault == "timeout":
        made = Fault(endpoint=endpoint, kind="delay", delay=TIMEOUT_DELAY, when=when)
    elif fault == "malformed":
        made = Fault(endpoint=endpoint, kind="malformed", when=when)
    elif fault == "html":
        made = Fault(endpoint=endpoint, status=502, body="html", when=when)
    elif fault == "401":
        if endpoint == "token":
            made = Fault(
                endpoint="token",
                status=401,
                body="openiddict",
                message="The specified client credentials are invalid.",
            )
        else:
            made = Fault(endpoint=endpoint, status=401, body="empty", when=when)
    elif fault == "404":
        made = Fault(endpoint=endpoint, status=404, body="abp", when=when)
    else:  # pragma: no cover - a typo in the table
        raise ValueError(fault)
    return [made]


def render_table(results: Mapping[tuple[str, str, str], str] | None = None) -> str:
    """
    A Markdown table: one row per fault and phase, one column per mode.

    :param results: ``passed``/``failed`` per case; ``None`` renders the expected outcomes only.
    """
    header = "| fault | phase | expected | " + " | ".join(MODES) + " |"
    lines = [header, "|" + "---|" * (3 + len(MODES))]
    all_cases = cases()
    for fault, label in FAULTS.items():
        for phase in PHASES:
            if (fault, phase, "sync") not in all_cases:
                continue
            plain, sensor = expected(fault, phase, "sync"), expected(fault, phase, "sensor")
            shown = plain.describe() if plain == sensor else f"{plain.describe()}; sensor: {sensor.describe()}"
            cells = []
            for mode in MODES:
                if results is None:
                    cells.append("✓")
                else:
                    cells.append({"passed": "✓", "failed": "✗"}.get(results.get((fault, phase, mode), ""), "not run"))
            lines.append(f"| {label} | {phase} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
