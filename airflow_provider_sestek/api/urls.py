"""
The Sestek endpoints and scopes, and the URL rules: base URLs from the connection, URLs fit for messages.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, quote, unquote, urlsplit

from airflow_provider_sestek.exceptions import (
    SestekConfigError,
)

# "host:port" followed by the path: a colon that is not a user:password separator.
_HOST_PORT = re.compile(r"(?:\[[^\]]*\]|[^/?#:@]*)(?::\d*)?(?:[/?#]|$)")
TOKEN_PATH = "/connect/token"
_TRAININGS = "/sestekai-api/api/external/generative-question-answering-trainings"
TRAIN_PATH = f"{_TRAININGS}/train"
PROGRESS_PATH = _TRAININGS + "/{model_id}/progress"
INFERENCE_PATH = "/published/{tenant}-{model_id}/v1/text/question-answering/inference"

TRAINING_SCOPE = "SestekAI_External"
INFERENCE_SCOPE = "AIModule"


def normalize_base_url(url: str | None, field_name: str = "host") -> str:
    """
    Validate a base URL from the connection; a bare host name means https.

    :param url: the value as configured.
    :param field_name: connection field named in the error.
    """
    if url is None or not str(url).strip():
        raise SestekConfigError(field_name, "is empty; set it to the base URL, e.g. https://ai.example.com")
    url = str(url).strip()
    if "://" not in url:
        url = "https://" + url
    shown = repr(redact_url(url))
    parts = _split(url)
    if parts is None and _bad_port(url):
        raise SestekConfigError(field_name, f"{shown} must have a port from 1 to 65535")
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SestekConfigError(field_name, f"{shown} is not an http(s) URL with a host name")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise SestekConfigError(field_name, f"{shown} contains white space or control characters")
    if not _valid_hostname(parts.hostname):
        raise SestekConfigError(
            field_name, f"{shown} does not have a valid host name (labels of 1-63 characters, 253 in all)"
        )
    if parts.username is not None or parts.password is not None:
        # requests would send it as Basic auth to every address, redirects included.
        raise SestekConfigError(
            field_name, f"{shown} must not contain user:password@; put the client id and secret in login and password"
        )
    if parts.query or parts.fragment:
        raise SestekConfigError(field_name, f"{shown} must not have a query or fragment")
    if parts.port == 0:
        raise SestekConfigError(field_name, f"{shown} must have a port from 1 to 65535")
    # The model's asset URI carries the base path, and its normalizer refuses dot segments: refused here,
    # before any request, rather than after a training that then cannot name its model.
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise SestekConfigError(field_name, f"{shown} must not have '.' or '..' path segments")
    return url.rstrip("/")


def _bad_port(url: str) -> bool:
    """Whether ``urlsplit`` reads ``url`` but not its port (``:99999``, ``:-1``, ``:x``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False  # not a URL at all (an unclosed IPv6 bracket): the generic message fits
    try:
        parts.port  # noqa: B018 - parsed lazily; a bad one raises here
    except ValueError:
        return True
    return False


def _split(url: str) -> SplitResult | None:
    """``urlsplit`` and its port check, or ``None`` for what they refuse (``https://[::1``, a port of ``x``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily; a bad one raises here
    except ValueError:
        return None
    return parts


def _valid_hostname(hostname: str) -> bool:
    if ":" in hostname:  # an IPv6 literal; urlsplit has checked its brackets
        return True
    try:
        ascii_name = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.rstrip(".").split(".")
    return len(ascii_name) <= 253 and all(0 < len(label) <= 63 for label in labels)


def origin(url: str) -> str:
    """
    ``scheme://host[:port]`` of a URL, without credentials, path or query: how messages name where a
    request went. What cannot be parsed is not echoed.

    :param url: an absolute URL.
    """
    parts = _split(url)
    if parts is None:
        return "an unparsable URL"
    if not parts.hostname:
        return f"{parts.scheme}:" if parts.scheme else "an unparsable URL"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def redact_url(url: str) -> str:
    """
    A URL fit for messages, logs and lineage: any ``user:password@`` is removed, whatever else is wrong
    with the URL. A password with an unencoded ``/``, ``?`` or ``#`` (an AWS secret key pasted as is) ends
    the host part early for a URL parser; it is recognised by the ``user:`` before it and removed too.

    :param url: the URL as given.
    """
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    at = rest.find("@")
    if at == -1:
        return text
    netloc_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            netloc_end = min(netloc_end, index)
    if at < netloc_end:
        start = rest.rfind("@", 0, netloc_end) + 1  # the host follows the last @ of the host part
    elif ":" in rest[:at] and not (scheme.lower() in ("http", "https") and _HOST_PORT.match(rest[:at])):
        # user:pass/with/slashes@host. Object-storage URLs have no port, so a colon there is a password's.
        start = at + 1
    else:
        return text  # an @ in the path, query or fragment
    return f"{scheme}{sep}{rest[start:]}"


def token_url(identity_url: str) -> str:
    """
    The token endpoint: ``{identity_url}/connect/token`` unless the URL already names it.

    :param identity_url: normalized identity base URL.
    """
    return identity_url if identity_url.endswith(TOKEN_PATH) else identity_url + TOKEN_PATH


def train_url(base_url: str) -> str:
    """:param base_url: normalized API base URL."""
    return base_url + TRAIN_PATH


def progress_url(base_url: str, model_id: str) -> str:
    """
    :param base_url: normalized API base URL.
    :param model_id: a valid model id.
    """
    return base_url + PROGRESS_PATH.format(model_id=quote(model_id, safe=""))


def inference_url(base_url: str, tenant: str, model_id: str) -> str:
    """
    ``{tenant}-{model_id}`` is ONE path segment.

    :param base_url: normalized API base URL.
    :param tenant: the tenant name.
    :param model_id: a valid model id.
    """
    return base_url + INFERENCE_PATH.format(tenant=quote(tenant, safe=""), model_id=quote(model_id, safe=""))


#: The placeholders a portal link template may use.
PORTAL_FIELDS = ("model_id", "tenant")
#: The longest portal link template accepted.
MAX_PORTAL_TEMPLATE = 2000


def validate_portal_template(template: object) -> str:
    """
    Check the connection's ``portal_url`` template when the connection is read, before any request: a template
    that would not render (or would render something that is not a web link) is refused, not silently dropped
    after a training was submitted.

    :param template: e.g. ``https://portal.example.com/{tenant}/models/{model_id}``.
    :return: the template, stripped.
    """
    import string

    if not isinstance(template, str) or not template.strip():
        raise SestekConfigError("portal_url", "must be a non-empty URL template")
    value = template.strip()
    if len(value) > MAX_PORTAL_TEMPLATE:
        raise SestekConfigError("portal_url", f"is longer than {MAX_PORTAL_TEMPLATE} characters")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise SestekConfigError("portal_url", f"is not a valid template ({exc}); write {{model_id}}") from None
    for name, spec, conversion in fields:
        if name not in PORTAL_FIELDS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise SestekConfigError(
                "portal_url",
                f"placeholder {shown[:60]} is not allowed: use only {{model_id}} and {{tenant}}, with no format",
            )
    parts = _split(value.format(model_id="model-id", tenant="tenant"))
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SestekConfigError("portal_url", "must render an absolute http:// or https:// URL with a host")
    return value
