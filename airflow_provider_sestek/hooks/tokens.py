"""
The process-wide cache of OAuth2 access tokens, and their registration with Airflow's log masker.

Which token to use and when to fetch one is decided by the call flow (:mod:`.flow`); this module only
keeps them. Locks that make fetching single-flight belong to the transports: a thread lock for the sync
side, an asyncio lock per event loop (kept with that loop's pool, so it dies with the loop) for the async.
"""

from __future__ import annotations

import importlib
import sys
import threading

from airflow_provider_sestek import api

TokenKey = tuple[str, str, str]


class TokenCache:
    """One token per client (token URL, client id, digest of the secret), shared by every hook of the process."""

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, api.Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}

    def get(self, key: TokenKey) -> api.Token | None:
        """
        The cached token if it is still fresh.

        :param key: the client's cache key.
        """
        token = self._tokens.get(key)
        return token if token is not None and token.fresh() else None

    def put(self, key: TokenKey, token: api.Token) -> None:
        """
        Remember a token.

        :param key: the client's cache key.
        :param token: the token.
        """
        self._tokens[key] = token

    def invalidate(self, key: TokenKey, access_token: str) -> None:
        """
        Drop the token only if it is still the one that was refused (another caller may have refreshed).

        :param key: the client's cache key.
        :param access_token: the refused token.
        """
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and current.access_token == access_token:
                del self._tokens[key]

    def fetch_lock(self, key: TokenKey) -> threading.Lock:
        """
        The thread lock that makes fetching a client's token single-flight in the sync transport.

        :param key: the client's cache key.
        """
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._tokens.clear()


TOKEN_CACHE = TokenCache()


def clear_token_cache() -> None:
    """Forget every cached token of this process (for tests and credential rotation)."""
    TOKEN_CACHE.clear()


def mask(secret: str) -> None:
    """
    Register a secret with Airflow's log masker.

    :param secret: the value to replace by ``***`` in task logs.
    """
    if _mask_in_process(secret):
        return
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)


# Where each Airflow 3 line keeps its process's masker (3.1+ in the shared package, 3.0 in the task SDK).
_MASKER_MODULES = ("airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker")


def _mask_in_process(secret: str) -> bool:
    """
    Under ``dag.test()`` the supervisor is this process: register the secret with this process's masker only.
    ``mask_secret`` would also send it to the supervisor, and the in-process supervisor logs every request it
    gets at DEBUG, the secret in it, to an output dag.test() does not mask.

    :param secret: the value to mask.
    :returns: whether it was registered here (else the caller uses ``mask_secret``).
    """
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ != "InProcessSupervisorComms":
        return False
    for name in _MASKER_MODULES:
        try:
            masker = getattr(importlib.import_module(name), "_secrets_masker", None)
        except ImportError:
            continue
        if callable(masker):
            masker().add_mask(secret)
            return True
    return False


async def amask(secret: str) -> None:
    """
    :func:`mask` for the event loop: on Airflow 3 the sync ``mask_secret`` also tells the supervisor with a
    blocking send, which would stall (or deadlock) the triggerer's loop.

    :param secret: the value to replace by ``***`` in trigger logs.
    """
    if _mask_in_process(secret):
        return
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        mask(secret)
    else:
        await amask_secret(secret)
