"""A tiny standard-library client of the emulator's ``/_emulator/`` admin endpoints."""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from ._faults import Fault

__all__ = ["EmulatorClient"]


class EmulatorClient:
    """
    Control an emulator running in another process (``python -m airflow_provider_sestek.testing``).

    :param url: the emulator's base URL, as printed by the CLI.
    :param timeout: seconds per admin call.
    :param ssl_context: for an HTTPS emulator with a self-signed certificate, a context that trusts it.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        import urllib.request

        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        # No proxy: environment proxies would otherwise intercept calls to a loopback emulator.
        self._opener = urllib.request.build_opener(*handlers)

    def _call(self, method: str, name: str, payload: Any = None, query: dict[str, Any] | None = None) -> Any:
        import urllib.error
        import urllib.request

        url = f"{self.url}/_emulator/{name}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - emulator URL
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"emulator admin call {method} {name} failed: HTTP {exc.code} {detail}") from None

    def health(self) -> bool:
        """Return whether the emulator answers its admin endpoint."""
        try:
            return bool(self._call("GET", "health").get("ok"))
        except (OSError, ValueError, RuntimeError):
            return False

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        """
        Block until the emulator answers.

        :param timeout: seconds to wait before raising :class:`TimeoutError`.
        """
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Sestek emulator at {self.url} did not answer within {timeout} s")
            time.sleep(0.05)

    def state(self) -> dict[str, Any]:
        """Counters, a summary of every training, the request count, pending faults and config."""
        result: dict[str, Any] = self._call("GET", "state")
        return result

    def requests(self, endpoint: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """
        The recorded API requests as dicts (see :meth:`RecordedRequest.to_dict`).

        :param endpoint: only requests of this endpoint (``token``, ``train``, ...).
        :param since: skip the first ``since`` recorded requests.
        """
        result: list[dict[str, Any]] = self._call("GET", "requests", query={"endpoint": endpoint, "since": since})
        return result

    def foreign_url(self) -> str:
        """Base URL of the foreign listener ``redirect`` faults point at (started if it is not yet)."""
        url: str = self._call("GET", "foreign")["url"]
        return url

    def foreign_requests(self) -> list[dict[str, Any]]:
        """Requests that reached the foreign listener, as dicts (see :meth:`RecordedRequest.to_dict`)."""
        result: list[dict[str, Any]] = self._call("GET", "foreign")["requests"]
        return result

    def add_fault(self, fault: Fault) -> None:
        """
        Queue a fault.

        :param fault: the fault.
        """
        self._call("POST", "faults", fault.to_dict())

    def faults(self) -> list[Fault]:
        """Faults not used up yet."""
        return [Fault.from_dict(item) for item in self._call("GET", "faults")]

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._call("DELETE", "faults")

    def reset(self) -> None:
        """Forget trainings, faults, recorded requests (foreign ones too) and counters."""
        self._call("POST", "reset", {})

    def set_lifecycle(self, model_id: str | None = None, statuses: Sequence[str] | None = None) -> None:
        """
        Override the status sequence, like :meth:`SestekEmulator.set_lifecycle`.

        :param model_id: the model, or ``None`` for all.
        :param statuses: the sequence, or ``None`` to remove the override.
        """
        self._call(
            "POST", "lifecycle", {"model_id": model_id, "statuses": None if statuses is None else list(statuses)}
        )

    def fail_model(self, model_id: str, fail: bool = True) -> None:
        """
        Make trainings of ``model_id`` fail at the Training step.

        :param model_id: the model id.
        :param fail: ``False`` undoes it.
        """
        self._call("POST", "fail-model", {"model_id": model_id, "fail": fail})
