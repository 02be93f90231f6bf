"""
What a recorded request may keep of the secrets it carried.

Recorded requests are read by tests, printed in failure reports and served by the unauthenticated
admin API, so by default they keep no secret: a credential becomes a marker such as
``<redacted:1f0c...>``. The marker is a keyed hash (a key of this emulator's own, never shown), so a
test can still ask "did the callback secret I configured arrive?" by comparing with
:meth:`Redactor.marker` of that secret, while nobody can recover or guess a secret from it.
``record_secrets=True`` keeps everything verbatim, for the tests that need the raw bytes.

Standard library only, and pure: no I/O, no locks.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

__all__ = ["Redactor", "is_secret_name"]

#: Headers whose value is a credential. ``Authorization`` keeps its scheme (``Bearer``, ``Basic``).
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
# Form fields, query parameters and JSON keys that hold a credential: client_secret,
# callbackClientSecret, password, access_token, refresh_token, client_assertion, api_key, ...
_SECRET_NAME = re.compile(
    r"secret|passw(or)?d|(^|[_-])(access|refresh|id)?[_-]?token$|^token$|assertion|api[_-]?key", re.IGNORECASE
)
_QUERY_HINT = re.compile(r"secret|passw|token|assertion|key", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """
    Whether a form field, query parameter or JSON key of this name holds a credential.

    :param name: the name as sent.
    """
    return bool(_SECRET_NAME.search(name))


class Redactor:
    """
    Replaces the secrets of a recorded request with markers, unless told to keep them.

    :param keep: keep every value verbatim (``record_secrets=True``).
    """

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self._key = secrets.token_bytes(32)

    def marker(self, secret: str) -> str:
        """
        The marker recorded requests show in place of ``secret``.

        :param secret: the value, as it was sent.
        """
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return f"<redacted:{digest[:16]}>"

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """
        ``headers`` with credential values replaced (``Bearer <redacted:...>``).

        :param headers: header name -> value, as received.
        """
        if self.keep or not any(name.lower() in _SECRET_HEADERS for name in headers):
            return headers
        return {name: self._header(name, value) for name, value in headers.items()}

    def _header(self, name: str, value: str) -> str:
        if name.lower() not in _SECRET_HEADERS:
            return value
        scheme, space, credential = value.strip().partition(" ")
        if name.lower().endswith("authorization") and space and credential.strip():
            return f"{scheme} {self.marker(credential.strip())}"
        return self.marker(value)

    def form(self, form: dict[str, list[str]]) -> dict[str, list[str]]:
        """
        ``form`` with the values of credential fields replaced.

        :param form: field name -> values.
        """
        if self.keep or not any(is_secret_name(name) for name in form):
            return form
        return {
            name: [self.marker(value) for value in values] if is_secret_name(name) else values
            for name, values in form.items()
        }

    def query(self, query: str) -> str:
        """
        The query string with the values of credential parameters replaced (the rest kept as it is).

        :param query: the query string as the server decoded it (aiohttp's ``query_string``), without ``?``.
        """
        if self.keep or not query or not _QUERY_HINT.search(query):
            return query
        pieces = []
        for piece in query.split("&"):
            name, equals, value = piece.partition("=")
            if equals and is_secret_name(name):
                value = self.marker(value)
            pieces.append(f"{name}{equals}{value}")
        return "&".join(pieces)

    def json(self, value: Any) -> Any:
        """
        A copy of a parsed JSON body with the string values of credential keys replaced, at any depth.

        The walk is iterative: a body the JSON decoder accepted may be nested close to the recursion limit.

        :param value: the parsed body; returned as it is when it holds no credential key.
        """
        if self.keep or not self._has_secret_key(value):
            return value
        root: list[Any] = [value]
        stack: list[tuple[Any, Any]] = [(root, 0)]
        while stack:
            parent, key = stack.pop()
            node = parent[key]
            if isinstance(node, dict):
                copy = dict(node)
                parent[key] = copy
                for name, item in copy.items():
                    if isinstance(item, str) and is_secret_name(name):
                        copy[name] = self.marker(item)
                    elif isinstance(item, dict | list):
                        stack.append((copy, name))
            elif isinstance(node, list):
                items = list(node)
                parent[key] = items
                stack.extend((items, index) for index, item in enumerate(items) if isinstance(item, dict | list))
        return root[0]

    @staticmethod
    def _has_secret_key(value: Any) -> bool:
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for name, item in node.items():
                    if isinstance(name, str) and is_secret_name(name) and isinstance(item, str):
                        return True
                    if isinstance(item, dict | list):
                        stack.append(item)
            elif isinstance(node, list):
                stack.extend(item for item in node if isinstance(item, dict | list))
        return False
