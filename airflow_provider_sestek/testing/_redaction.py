"""
What a recorded request may keep of the secrets it carried.

Recorded requests are read by tests, printed in failure reports and served by the unauthenticated
admin API, so by default they keep no secret: a credential becomes a marker such as
``<redacted:1f0c...>``. The marker is a keyed hash (a key of this emulator's own, never shown), so a
test can still ask "did the callback secret I configured arrive?" by comparing with
:meth:`Redactor.marker` of that secret, while nobody can recover or guess a secret from it.
``record_secrets=True`` keeps everything verbatim, for the tests that need the raw bytes.

Only the process that runs the emulator can compare markers: the admin API, which anyone on the port
can read (and write guesses into), shows :data:`ADMIN_MARKER` without the keyed part (:func:`for_admin`),
so it cannot serve as an oracle that confirms a guessed secret.

Standard library only, and pure: no I/O, no locks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import urllib.parse
from typing import Any

__all__ = ["ADMIN_MARKER", "Redactor", "for_admin", "is_secret_name"]

#: Headers whose value is a credential besides those :func:`is_secret_name` recognises.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Form fields, query parameters, JSON keys and header names that hold a credential: client_secret,
# callbackClientSecret, password, pwd, passphrase, access_token, authToken, X-Auth-Token, auth[token],
# client_assertion, api_key, Api-Key, credentials, private_key, session ids, signatures.
_SECRET_NAME = re.compile(
    r"secret|passw|passphrase|pwd|(^|[^a-z])pass([^a-z]|$)|token|assertion|api[-_ ]?key|credential"
    r"|private[-_]?key|session|signature|(^|[^a-z])auth([^a-z]|$)|cookie|authori[sz]ation|authentication"
    r"|subscription[-_]?key|access[-_]?key|^(sig|key|code)$",  # sig: Azure SAS; key: Google; code: OAuth
    re.IGNORECASE,
)
# A URL urlsplit refuses (an unclosed bracket, NFKC-changing characters) still has its userinfo cut out.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")
# Names the rule above would catch that only describe a credential: token_type, token_type_hint, max_tokens.
_NOT_SECRET_NAME = re.compile(r"[_-]?type$|[_-]hint$|^max[_-]?tokens$", re.IGNORECASE)
_MARKER = re.compile(r"<redacted:[0-9a-f]{16}>")
#: What the admin API shows in place of every marker.
ADMIN_MARKER = "<redacted>"


def for_admin(text: str) -> str:
    """
    ``text`` (the admin API's JSON) with every marker's keyed part removed.

    :param text: serialized records, snapshots or state.
    """
    return _MARKER.sub(ADMIN_MARKER, text)


def is_secret_name(name: str) -> bool:
    """
    Whether a form field, query parameter or JSON key of this name holds a credential.

    :param name: the name as sent.
    """
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.search(name)


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
        ``headers`` with credential values replaced (``Bearer <redacted:...>``), URLs in others redacted.

        :param headers: header name -> value, as received.
        """
        if self.keep:
            return headers
        return {name: self._header(name, value) for name, value in headers.items()}

    @staticmethod
    def _secret_header(name: str) -> bool:
        return name.lower() in _SECRET_HEADERS or is_secret_name(name)

    def _header(self, name: str, value: str) -> str:
        if not self._secret_header(name):
            return self.url(value)  # a Referer may carry a signed URL
        scheme, space, credential = value.strip().partition(" ")
        if name.lower().endswith("authorization") and space and credential.strip():
            return f"{scheme} {self.marker(credential.strip())}"
        return self.marker(value)

    def form(self, form: dict[str, list[str]]) -> dict[str, list[str]]:
        """
        ``form`` with the values of credential fields replaced.

        :param form: field name -> values.
        """
        if self.keep:
            return form
        return {
            name: [self.marker(value) for value in values] if is_secret_name(name) else [self.url(v) for v in values]
            for name, values in form.items()
        }

    def url(self, value: str) -> str:
        """
        ``value`` with the password of a ``user:password@`` and credential query parameters replaced, when
        it is an absolute URL (``callbackAddress``, ``dataUrls``); any other text as it is.

        :param value: a form value or JSON string.
        """
        if self.keep or "://" not in value or not ("@" in value or "?" in value or "#" in value):
            return value
        try:
            parts = urllib.parse.urlsplit(value)
            password = parts.password
        except ValueError:
            return self._unparsable_url(value)
        netloc = parts.netloc
        if password is not None:
            user_info, _, host = netloc.rpartition("@")
            user = user_info.partition(":")[0]
            netloc = f"{user}:{self.marker(urllib.parse.unquote(password))}@{host}"
        query, fragment = self.query(parts.query), self.query(parts.fragment)  # #access_token=... too
        if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
            return value
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))

    def _unparsable_url(self, value: str) -> str:
        match = _USERINFO.match(value)
        if match is not None:
            value = f"{match.group(1)}{self.marker(match.group(2))}@{value[match.end() :]}"
        head, question, rest = value.partition("?")
        return head + question + self.query(rest) if question else value

    def query(self, query: str) -> str:
        """
        The query string with the values of credential parameters replaced (the rest kept as it is).

        :param query: the query string as the server decoded it (aiohttp's ``query_string``), without ``?``.
        """
        if self.keep or not query or "=" not in query:
            return query
        pieces = []
        for piece in query.split("&"):
            name, equals, value = piece.partition("=")
            if equals and is_secret_name(name):
                value = self.marker(value)
            elif equals:
                value = self.url(value)
            pieces.append(f"{name}{equals}{value}")
        return "&".join(pieces)

    def json(self, value: Any) -> Any:
        """
        A copy of a parsed JSON body with the values of credential keys replaced (whatever their type) and
        URLs with credentials redacted, at any depth.

        The walk is iterative: a body the JSON decoder accepted may be nested close to the recursion limit.

        :param value: the parsed body; returned as it is when it holds no credential key.
        """
        if self.keep or not self._needs_redaction(value):
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
                    if is_secret_name(name) and item is not None:
                        copy[name] = self._any_marker(item)
                    elif isinstance(item, dict | list):
                        stack.append((copy, name))
                    elif isinstance(item, str):
                        copy[name] = self.url(item)
            elif isinstance(node, list):
                items = list(node)
                parent[key] = items
                for index, item in enumerate(items):
                    if isinstance(item, dict | list):
                        stack.append((items, index))
                    elif isinstance(item, str):
                        items[index] = self.url(item)
        return root[0]

    def _any_marker(self, value: Any) -> str:
        # A secret may be a number or a structure too: its JSON text is what gets the marker.
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        return self.marker(text)

    @staticmethod
    def _needs_redaction(value: Any) -> bool:
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for name, item in node.items():
                    if is_secret_name(name) and item is not None:
                        return True
                    stack.append(item)
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str) and "://" in node:
                return True
        return False
