"""
The fault model: what a :class:`Fault` may ask for, its validation, and the queue of pending faults.

Plain data and rules only (standard library): the facade, the admin client and the CLI build and
check faults without the server; :mod:`._fault_delivery` (aiohttp) delivers them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ._endpoints import Endpoint

__all__ = [
    "FAULT_BODIES",
    "FAULT_ENDPOINTS",
    "FAULT_KINDS",
    "FAULT_NON_FINITE",
    "FAULT_REDIRECT_STATUSES",
    "FAULT_WHEN",
    "Fault",
    "FaultBody",
    "FaultEndpoint",
    "FaultKind",
    "FaultQueue",
    "FaultWhen",
    "needs_foreign_listener",
]


class FaultKind(StrEnum):
    """What a fault does (see :class:`Fault`)."""

    STATUS = "status"
    DROP = "drop"
    DELAY = "delay"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    REDIRECT = "redirect"
    DRIP = "drip"
    ODD_TOKEN = "odd_token"
    NON_FINITE = "non_finite"
    RAW = "raw"


class FaultEndpoint(StrEnum):
    """Which requests a fault applies to: one API endpoint, or ``any``."""

    TOKEN = Endpoint.TOKEN.value
    TRAIN = Endpoint.TRAIN.value
    PROGRESS = Endpoint.PROGRESS.value
    INFERENCE = Endpoint.INFERENCE.value
    ANY = "any"

    def matches(self, endpoint: str) -> bool:
        """
        Whether a request to ``endpoint`` is one this fault applies to.

        :param endpoint: the request's endpoint.
        """
        return self is FaultEndpoint.ANY or self.value == endpoint


class FaultBody(StrEnum):
    """The body style of a ``status`` fault."""

    ABP = "abp"
    HTML = "html"
    EMPTY = "empty"
    OPENIDDICT = "openiddict"


class FaultWhen(StrEnum):
    """``before``: the fault replaces the handling; ``after``: the request takes effect first."""

    BEFORE = "before"
    AFTER = "after"


FAULT_ENDPOINTS: tuple[str, ...] = tuple(e.value for e in FaultEndpoint)
FAULT_KINDS: tuple[str, ...] = tuple(k.value for k in FaultKind)
FAULT_BODIES: tuple[str, ...] = tuple(b.value for b in FaultBody)
FAULT_WHEN: tuple[str, ...] = tuple(w.value for w in FaultWhen)
FAULT_REDIRECT_STATUSES: tuple[int, ...] = (301, 302, 303, 307, 308)
#: The literals a ``non_finite`` fault may write as ``percent``: what JSON parsers disagree about.
FAULT_NON_FINITE: tuple[str, ...] = ("1e999", "Infinity", "-Infinity", "NaN")
#: The ``status`` a fault gets when none is given, per kind (503 for every kind not listed).
FAULT_DEFAULT_STATUS: Mapping[str, int] = MappingProxyType({FaultKind.REDIRECT: 307, FaultKind.RAW: 200})


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _encodable(value: object) -> bool:
    # Every text of a fault is sent as UTF-8: a lone surrogate cannot be, and would turn into a 500.
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: object, whole: bool = False) -> bool:
    # bool is an int to Python, never a count or a number of seconds to a user.
    kinds: type | tuple[type, ...] = int if whole else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    if not _is_number(value):
        return False
    try:
        return math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond any float: 10**400 seconds is not a delay
        return False


def _header_safe(value: str) -> bool:
    # The value goes into a response header verbatim: a CR or LF would forge further headers.
    return not any(ord(char) < 32 or ord(char) == 127 for char in value)


@dataclass
class Fault:
    """
    A misbehaviour the emulator delivers to the next matching request(s).

    :param endpoint: which API the fault applies to: ``token``, ``train``, ``progress``, ``inference``
        or ``any``.
    :param kind: ``status`` (answer with ``status`` and a ``body`` of the given style), ``drop`` (close
        the socket without answering), ``delay`` (wait ``delay`` seconds, then answer normally),
        ``malformed`` (200 with a body that is not JSON), ``truncated`` (200 whose ``Content-Length``
        promises more than is sent before the connection closes), ``redirect`` (answer ``status`` with
        a ``Location`` header: ``location``, or by default the same path and query on a second, foreign
        listener that records what reaches it, see :attr:`SestekEmulator.foreign_requests`), ``drip``
        (the normal response, its body sent one byte every ``delay`` seconds; with ``when="before"``
        the request is handled normally too), ``odd_token`` (token endpoint only: a 200 token response
        whose ``access_token`` is ``value``, which the API then accepts as a bearer token),
        ``non_finite`` (progress endpoint only: the progress answer with ``percent`` written as the
        JSON-invalid literal ``value``) or ``raw`` (answer ``status`` with the body ``raw_body``, sent
        as UTF-8, and ``content_type``).
    :param status: HTTP status of a ``status``, ``redirect`` or ``raw`` fault; ``None`` picks the kind's
        default: 307 for ``redirect`` (which allows only 301, 302, 303, 307 and 308), 200 for ``raw``,
        503 otherwise.
    :param body: body style of a ``status`` fault: ``abp`` (ABP error envelope), ``html`` (a gateway
        error page), ``empty`` or ``openiddict`` (RFC 6749 error object).
    :param retry_after: value of a ``Retry-After`` header on a ``status``, ``redirect`` or ``raw`` fault
        (seconds or an HTTP date).
    :param delay: seconds a ``delay`` fault waits; seconds between two body bytes of a ``drip`` fault.
    :param when: ``before``: the fault replaces the handling, nothing is created; ``after``: the request
        is handled (a training is created, a poll advances the lifecycle) and the fault is delivered
        instead of the real response.
    :param count: how many matching requests the fault applies to; ``None`` means every one.
    :param model_id: only requests about this model id match.
    :param message: error message of an ``abp`` or ``openiddict`` body instead of the default one.
    :param location: ``redirect`` only: the ``Location`` to send instead of the foreign listener's URL
        (any text without control characters, sent verbatim).
    :param endless: ``drip`` only: send the head without ``Content-Length`` and with
        ``Connection: close``, then one space every ``delay`` seconds until the client disconnects or
        the emulator stops.
    :param value: ``odd_token``: the ``access_token`` to hand out (any string: it is JSON-escaped);
        ``non_finite``: the literal written as ``percent``, one of ``1e999``, ``Infinity``,
        ``-Infinity`` and ``NaN``.
    :param raw_body: ``raw`` only: the exact response body.
    :param content_type: ``Content-Type`` of a ``raw`` fault; an empty string sends none.
    """

    endpoint: FaultEndpoint | str = FaultEndpoint.ANY
    kind: FaultKind | str = FaultKind.STATUS
    status: int | None = None
    body: FaultBody | str = FaultBody.ABP
    retry_after: float | str | None = None
    delay: float = 0.0
    when: FaultWhen | str = FaultWhen.BEFORE
    count: int | None = 1
    model_id: str | None = None
    message: str | None = None
    location: str | None = None
    endless: bool = False
    value: str | None = None
    raw_body: str | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        # Strings are accepted (the README and the admin JSON use them) and kept as the enums, which
        # compare equal to them: every reader after this line deals in members only.
        _require(self.endpoint in FAULT_ENDPOINTS, f"fault endpoint must be one of {FAULT_ENDPOINTS}")
        self.endpoint = FaultEndpoint(self.endpoint)
        _require(self.kind in FAULT_KINDS, f"fault kind must be one of {FAULT_KINDS}")
        self.kind = FaultKind(self.kind)
        if self.status is None:
            # Resolved here, so the dict form and every reader see the status actually sent.
            self.status = FAULT_DEFAULT_STATUS.get(self.kind, 503)
        _require(self.body in FAULT_BODIES, f"fault body must be one of {FAULT_BODIES}")
        self.body = FaultBody(self.body)
        _require(self.when in FAULT_WHEN, f"fault 'when' must be one of {FAULT_WHEN}")
        self.when = FaultWhen(self.when)
        _require(
            isinstance(self.status, int) and not isinstance(self.status, bool) and 200 <= self.status <= 599,
            # A 1xx is an interim response: sent as the answer, the client waits for a final one forever.
            "fault status must be a final HTTP status code (200-599)",
        )
        _require(
            self.count is None or (_is_number(self.count, whole=True) and self.count >= 1),
            "fault count must be a whole number >= 1 or None",
        )
        _require(_finite(self.delay), "fault delay must be a finite number of seconds")
        _require(self.delay >= 0, "fault delay must be >= 0")
        _require(self.kind is not FaultKind.DELAY or self.delay > 0, "a 'delay' fault needs delay > 0")
        _require(
            self.retry_after is None or isinstance(self.retry_after, str) or _finite(self.retry_after),
            "fault retry_after must be a finite number of seconds or a text (an HTTP date)",
        )
        _require(
            not _is_number(self.retry_after) or self.retry_after >= 0,  # type: ignore[operator]
            "fault retry_after must be >= 0 seconds (any text, e.g. '-1', can still be sent as a string)",
        )
        _require(self.retry_after != "", "fault retry_after must not be empty")
        for name in ("model_id", "message"):
            value = getattr(self, name)
            _require(value is None or isinstance(value, str), f"fault {name} must be a string")
        _require(
            not isinstance(self.retry_after, str) or _header_safe(self.retry_after),
            "fault retry_after must not contain control characters",
        )
        self._check_new_kinds()

    def _check_new_kinds(self) -> None:
        kind = FaultKind(self.kind)
        for name in ("message", "location", "retry_after", "value", "raw_body", "content_type"):
            _require(_encodable(getattr(self, name)), f"fault {name} must be encodable as UTF-8")
        _require(
            kind is not FaultKind.REDIRECT or self.status in FAULT_REDIRECT_STATUSES,
            f"a 'redirect' fault needs a status of {FAULT_REDIRECT_STATUSES}",
        )
        _require(self.location is None or kind is FaultKind.REDIRECT, "only a 'redirect' fault takes a location")
        _require(
            self.location is None or (isinstance(self.location, str) and bool(self.location)),
            "fault location must be a non-empty string",
        )
        _require(
            self.location is None or _header_safe(self.location), "fault location must not contain control characters"
        )
        _require(isinstance(self.endless, bool), "fault endless must be a boolean")
        _require(not self.endless or kind is FaultKind.DRIP, "only a 'drip' fault can be endless")
        _require(
            kind is not FaultKind.DRIP or self.delay >= 0.001,
            "a 'drip' fault needs delay >= 0.001 (seconds between bytes; faster is a flood, not a drip)",
        )
        _require(
            self.value is None or kind in (FaultKind.ODD_TOKEN, FaultKind.NON_FINITE),
            "only odd_token/non_finite take a value",
        )
        if kind is FaultKind.ODD_TOKEN:
            _require(isinstance(self.value, str), "an 'odd_token' fault needs a string value (the access token)")
            _require(self.endpoint is FaultEndpoint.TOKEN, "an 'odd_token' fault needs endpoint='token'")
        if kind is FaultKind.NON_FINITE:
            _require(self.value in FAULT_NON_FINITE, f"a 'non_finite' fault needs a value of {FAULT_NON_FINITE}")
            _require(self.endpoint is FaultEndpoint.PROGRESS, "a 'non_finite' fault needs endpoint='progress'")
        _require(self.raw_body is None or kind is FaultKind.RAW, "only a 'raw' fault takes a raw_body")
        _require(kind is not FaultKind.RAW or isinstance(self.raw_body, str), "a 'raw' fault needs a string raw_body")
        _require(
            isinstance(self.content_type, str) and _header_safe(self.content_type),
            "fault content_type must be a string without control characters",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the fault as a JSON-compatible dict (the admin endpoint's format, enums as their strings)."""
        return {name: value.value if isinstance(value, StrEnum) else value for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """
        Build a fault from its dict form, rejecting unknown keys so typos do not silently match everything.

        :param data: the dict, e.g. parsed from ``POST /_emulator/faults``.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        _require(not unknown, f"unknown fault field(s): {sorted(unknown)}")
        return cls(**data)


def needs_foreign_listener(fault: Fault) -> bool:
    """
    Whether ``fault`` redirects to the foreign listener (a ``redirect`` without ``location``), which is
    then started when the fault is added, so its URL is known before the first redirect.

    :param fault: the fault.
    """
    return fault.kind is FaultKind.REDIRECT and fault.location is None


@dataclass(eq=False)
class _Pending:
    fault: Fault
    remaining: int | None


class FaultQueue:
    """Faults not used up yet, matched in the order they were added. Not thread-safe: its owner locks."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def add(self, fault: Fault) -> None:
        """
        Queue a fault.

        :param fault: the fault.
        """
        self._pending.append(_Pending(fault, fault.count))

    def clear(self) -> None:
        """Forget every fault."""
        self._pending.clear()

    def faults(self) -> list[Fault]:
        """The pending faults, oldest first."""
        return [pending.fault for pending in self._pending]

    def take(self, endpoint: str, model_id: str | None, when: FaultWhen, filtered: bool | None) -> Fault | None:
        """
        Use up the first matching fault.

        :param endpoint: the endpoint of the request.
        :param model_id: the model the request is about, if known.
        :param when: ``before`` or ``after``.
        :param filtered: ``True`` only considers faults with a model filter, ``False`` only those without.
        """
        for index, pending in enumerate(self._pending):
            fault = pending.fault
            if fault.when != when or not FaultEndpoint(fault.endpoint).matches(endpoint):
                continue
            if filtered is not None and filtered != (fault.model_id is not None):
                continue
            if fault.model_id is not None and fault.model_id != model_id:
                continue
            if pending.remaining is not None:
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._pending[index]
            return fault
        return None
