"""
The process-wide cache of OAuth2 access tokens, and their registration with Airflow's log masker.

Which token to use and when to fetch one is decided by the call flow (:mod:`.flow`); this module only
keeps them. Locks that make fetching single-flight belong to the transports: a thread lock for the sync
side, an asyncio lock per event loop (kept with that loop's pool, so it dies with the loop) for the async.
"""

from __future__ import annotations

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
    from airflow.providers.common.compat.sdk import mask_secret

    local = getattr(sys.modules.get(getattr(mask_secret, "__module__", "")), "_secrets_masker", None)
    if callable(local) and _supervised_in_process():
        # dag.test(): the supervisor is this process, and Airflow 3.0's mask_secret sends it the value before
        # this process's masker knows it, so the DEBUG line logging that request printed the secret. Register
        # it here, where the supervisor would have (3.1 and later mask first and print "***").
        local().add_mask(secret)
        return
    mask_secret(secret)


def _supervised_in_process() -> bool:
    """Whether this task runs under ``dag.test()``'s in-process supervisor (Airflow 3)."""
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return type(comms).__name__ == "InProcessSupervisorComms"


async def amask(secret: str) -> None:
    """
    :func:`mask` for the event loop: on Airflow 3 the sync ``mask_secret`` also tells the supervisor with a
    blocking send, which would stall (or deadlock) the triggerer's loop.

    :param secret: the value to replace by ``***`` in trigger logs.
    """
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        mask(secret)
    else:
        await amask_secret(secret)
