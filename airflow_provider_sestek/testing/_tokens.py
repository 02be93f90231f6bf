"""
The token service's memory: registered clients, the access tokens issued to them, and the check every
API call makes (``401`` without a valid token, ``403`` with one of the wrong scope).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ._model import SCOPE_INFERENCE, SCOPE_TRAINING
from ._wire import Reply

__all__ = ["Tokens"]


@dataclass(frozen=True, slots=True)
class _Token:
    scope: str
    client_id: str
    expires: float


class Tokens:
    """
    Clients and their tokens; safe to use from any thread.

    :param clients: training clients (id -> secret).
    :param inference_clients: inference clients (id -> secret).
    :param lifetime: seconds a token lives.
    :param prefix: what every issued token starts with.
    """

    def __init__(
        self, clients: Mapping[str, str], inference_clients: Mapping[str, str], lifetime: float, prefix: str
    ) -> None:
        self.clients = dict(clients)
        self.inference_clients = dict(inference_clients)
        self.lifetime = lifetime
        self.prefix = prefix
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}

    def scope_of(self, client_id: str, client_secret: str) -> str | None:
        """
        The scope of a client whose secret matches, else ``None``.

        :param client_id: the client id.
        :param client_secret: the secret it presented.
        """
        scope = None
        for registry, registry_scope in ((self.clients, SCOPE_TRAINING), (self.inference_clients, SCOPE_INFERENCE)):
            expected = registry.get(client_id)
            if expected is not None and hmac.compare_digest(expected.encode(), client_secret.encode()):
                scope = registry_scope
        return scope

    def issue(self, client_id: str, scope: str) -> str:
        """
        Mint a token.

        :param client_id: who it is for.
        :param scope: its scope.
        """
        token = self.prefix + secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) >= 4096 and len(self._tokens) % 1024 == 0:
                for key in [k for k, v in self._tokens.items() if v.expires <= now]:
                    del self._tokens[key]
            self._tokens[token] = _Token(scope, client_id, now + self.lifetime)
        return token

    def accept(self, client_id: str, token: str) -> str:
        """
        Register a token chosen elsewhere (an ``odd_token`` fault's) for ``client_id``; returns its scope.

        :param client_id: the client it was handed to.
        :param token: the token.
        """
        scope = SCOPE_INFERENCE if client_id in self.inference_clients else SCOPE_TRAINING
        entry = _Token(scope, client_id, time.monotonic() + self.lifetime)
        with self._lock:
            self._tokens[token] = entry
            # Header values are compared as their raw bytes read as Latin-1, so a client that puts the
            # token's UTF-8 bytes on the wire presents this spelling of it.
            self._tokens[token.encode("utf-8").decode("latin-1")] = entry
        return scope

    def authorize(self, authorization: str, scope: str) -> Reply | None:
        """
        The ``401``/``403`` for a request without a valid token of ``scope``, or ``None``.

        :param authorization: the ``Authorization`` header as received (raw bytes as Latin-1).
        :param scope: the scope the endpoint requires.
        """
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Reply(401, headers=[("WWW-Authenticate", "Bearer")])
        with self._lock:
            entry = self._tokens.get(token)
            if entry is not None and entry.expires <= time.monotonic():
                del self._tokens[token]
                expired = 'Bearer error="invalid_token", error_description="The token expired"'
                return Reply(401, headers=[("WWW-Authenticate", expired)])
        if entry is None:
            return Reply(401, headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')])
        if entry.scope != scope:
            return Reply(403, headers=[("WWW-Authenticate", 'Bearer error="insufficient_scope"')])
        return None
