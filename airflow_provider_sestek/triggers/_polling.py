"""The hook a polling trigger uses (the training trigger and the publication watcher share it)."""

from __future__ import annotations

from airflow_provider_sestek.hooks.sestek import SestekHook


def poll_retry_deadline(poll_interval: float) -> float:
    """
    How long the trigger's in-poll retries may go on (the hook's ``retry_deadline``); never past the wait's
    own deadline, which each poll passes as ``stop_at``.

    :param poll_interval: seconds between polls.
    """
    return max(30.0, float(poll_interval))


def polling_hook(sestek_conn_id: str, poll_interval: float) -> SestekHook:
    """
    The hook a polling trigger uses: short in-poll retries, as the poll loop itself is the long-term retry.

    :param sestek_conn_id: the Sestek connection id.
    :param poll_interval: seconds between polls.
    """
    return SestekHook(
        sestek_conn_id,
        retry_limit=2,
        retry_delay=min(1.0, poll_interval),
        retry_max_delay=10.0,
        retry_deadline=poll_retry_deadline(poll_interval),
    )
