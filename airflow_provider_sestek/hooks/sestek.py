"""
:class:`SestekHook`: connection, OAuth2 tokens and HTTP for the Sestek AI external training API.

The hook wires the parts together, each in a module of its own: the connection settings
(:mod:`.config`), the token cache (:mod:`.tokens`), the retry rules (:mod:`.retry`), the decisions of an
authenticated call (:mod:`.flow`, written once), the two transports that carry them out
(:mod:`.transport_sync` over requests in the worker, :mod:`.transport_async` over aiohttp in the
triggerer) and the training upload (:mod:`.upload`). What a request looks like and what an answer means
lives in :mod:`airflow_provider_sestek.api`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_sestek import __version__, api
from airflow_provider_sestek.exceptions import SestekApiError, SestekConfigError, SestekError, SestekValidationError
from airflow_provider_sestek.hooks.config import (
    MAX_RESPONSE_BYTES,
    ClientKind,
    SestekConnectionConfig,
    connection_lookup,
)
from airflow_provider_sestek.hooks.tokens import TOKEN_CACHE, clear_token_cache

if TYPE_CHECKING:
    import requests

    from airflow_provider_sestek.hooks.flow import Call, CallFlow, Flow
    from airflow_provider_sestek.hooks.retry import RetryPolicy
    from airflow_provider_sestek.hooks.transport_async import AsyncTransport
    from airflow_provider_sestek.hooks.transport_sync import SyncTransport
    from airflow_provider_sestek.hooks.upload import TrainingRequest

# The call flow, the transports and the upload are imported where first used (in the methods below): a
# DAG file that only builds an operator (every parse of every DAG) needs none of them.

T = TypeVar("T")

# A model id that is valid but never used: the cheap authenticated call of test_connection.
CONNECTION_TEST_MODEL_ID = "airflow-connection-test"


class SestekHook(BaseHook):
    """
    Talk to the Sestek AI (Knovvu) external training API.

    Tokens are cached process-wide per client and refreshed a margin before they expire; many threads
    or coroutines asking at once cause one token request. Transient failures (connection errors,
    timeouts, 429, 502/503/504, and 500 on GET) are retried with exponential backoff and jitter,
    honouring ``Retry-After``, within ``retry_limit`` attempts and ``retry_deadline`` seconds. A train
    POST that may have reached the server is never repeated blindly: the caller decides (the operator
    re-attaches to the training it finds). Redirects are never followed: a 3xx is a
    :class:`~airflow_provider_sestek.exceptions.SestekApiError` naming where it pointed. Every request
    has a total deadline, the connection's ``timeout``.

    :param sestek_conn_id: the Airflow connection id of type ``sestek``.
    :param retry_limit: retries after the first attempt for transient failures.
    :param retry_delay: first backoff delay in seconds (doubles each retry, with jitter).
    :param retry_max_delay: longest single backoff delay in seconds.
    :param retry_deadline: longest total time, in seconds, spent retrying one call.
    """

    conn_name_attr = "sestek_conn_id"
    default_conn_name = "sestek_default"
    conn_type = "sestek"
    hook_name = "Sestek AI"
    # Bound on the async pool shared by all triggers of one event loop.
    async_max_connections = 100
    #: Longest response body read, in bytes (a larger one is an error, not read further).
    max_response_bytes = MAX_RESPONSE_BYTES

    def __init__(
        self,
        sestek_conn_id: str = default_conn_name,
        *,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        retry_deadline: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (
            ("retry_limit", retry_limit),
            ("retry_delay", retry_delay),
            ("retry_max_delay", retry_max_delay),
            ("retry_deadline", retry_deadline),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
                raise SestekValidationError(name, value, "must be a finite number, 0 or more")
        if not isinstance(retry_limit, int):
            raise SestekValidationError("retry_limit", retry_limit, "must be a whole number, 0 or more")
        self.sestek_conn_id = sestek_conn_id
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.retry_max_delay = retry_max_delay
        self.retry_deadline = retry_deadline
        self._config: SestekConnectionConfig | None = None
        self._call_flow: CallFlow | None = None
        self._progress_calls: dict[str, Call[api.TrainingProgress]] = {}
        self._async_transport: AsyncTransport | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sestek_conn_id={self.sestek_conn_id!r})"

    # --- connection UI (Airflow 2.11 - 3.1; 3.2+ reads the provider info) --------------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form where Airflow builds it from the hook (see :mod:`.form`)."""
        from airflow_provider_sestek.hooks.form import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled, hidden and placeholder fields of the connection form (Airflow 2.11 - 3.1)."""
        from airflow_provider_sestek.hooks.form import ui_field_behaviour

        return ui_field_behaviour()

    # --- configuration -------------------------------------------------------------------------------

    @property
    def config(self) -> SestekConnectionConfig:
        """The validated connection settings (looked up once per hook)."""
        if self._config is None:
            with connection_lookup(self.sestek_conn_id):
                conn = self.get_connection(self.sestek_conn_id)
            self._config = SestekConnectionConfig.from_connection(
                self.sestek_conn_id, conn.host, conn.login, conn.password, conn.extra_dejson, conn.port
            )
        return self._config

    async def aconfig(self) -> SestekConnectionConfig:
        """The validated connection settings, looked up without blocking the event loop."""
        if self._config is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            with connection_lookup(self.sestek_conn_id):
                if _comms_answer_only_synchronously():
                    # Airflow 3.3's dag.test() runs a trigger in-process with comms that have no ``asend``: the
                    # async lookup then skips the metadata DB and says "isn't defined". The synchronous lookup,
                    # off the event loop, is what the compat layer itself does on older lines.
                    from asgiref.sync import sync_to_async

                    conn = await sync_to_async(self.get_connection)(self.sestek_conn_id)
                else:
                    conn = await get_async_connection(self.sestek_conn_id)
                extra = await get_async_extra_dejson(conn)
            self._config = SestekConnectionConfig.from_connection(
                self.sestek_conn_id, conn.host, conn.login, conn.password, extra, conn.port
            )
        return self._config

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry limits of this hook's calls."""
        from airflow_provider_sestek.hooks.retry import RetryPolicy

        return RetryPolicy(self.retry_limit, self.retry_delay, self.retry_max_delay, self.retry_deadline)

    def _flow(self, config: SestekConnectionConfig) -> CallFlow:
        from airflow_provider_sestek.hooks.flow import CallFlow

        # Built once per hook: a trigger polls thousands of times with the same settings.
        flow, policy = self._call_flow, self.retry_policy
        if (
            flow is None
            or flow.config is not config
            or flow.policy != policy
            or flow.max_response_bytes != self.max_response_bytes
        ):
            flow = self._call_flow = CallFlow(config, policy, self.log, USER_AGENT, self.max_response_bytes)
        return flow

    def _progress_call(self, cfg: SestekConnectionConfig, model_id: str) -> Call[api.TrainingProgress]:
        call = self._progress_calls.get(model_id)
        if call is None:
            from airflow_provider_sestek.hooks.flow import Call

            api.validate_model_id(model_id)
            url = api.progress_url(cfg.base_url, model_id)
            call = Call(
                "GET",
                url,
                "progress",
                lambda status, body, secrets: api.parse_progress_response(status, body, url, secrets),
            )
            self._progress_calls[model_id] = call
        return call

    # --- sync calls (in the worker) ------------------------------------------------------------------

    @cached_property
    def _transport(self) -> SyncTransport:
        from airflow_provider_sestek.hooks.transport_sync import SyncTransport

        return SyncTransport(USER_AGENT, self.config.verify)

    def get_conn(self) -> requests.Session:
        """The requests session used for sync calls (proxies from the environment are honoured)."""
        return self._transport.session

    def get_token(self, kind: ClientKind = "training") -> str:
        """
        An access token for the training client (or the inference client), from the process-wide cache.

        :param kind: ``training`` or ``inference``.
        """
        return self._transport.run(self._flow(self.config).token(kind))

    def get_training_progress(self, model_id: str, *, stop_at: float | None = None) -> api.TrainingProgress:
        """
        Read a training's progress. Polling after ``Completed`` is what publishes the model.

        :param model_id: the model id.
        :param stop_at: wall-clock time (epoch seconds) after which no retry starts (a wait's deadline).
        """
        cfg = self.config
        return self._transport.run(self._flow(cfg).call(self._progress_call(cfg, model_id), stop_at))

    def prepare_training(
        self,
        model_id: str,
        project_name: str,
        data_files: Iterable[str | os.PathLike[str]] | str | None = (),
        data_urls: Iterable[str] | str | None = (),
        callback: api.CallbackConfig | None = None,
    ) -> TrainingRequest:
        """
        Validate a training request without sending anything (no Sestek call is made).

        :param model_id: lowercase letters, digits and ``-``, at most 63 characters.
        :param project_name: Sestek project name.
        :param data_files: local paths or object-storage URLs (``s3://``, ``file://`` ...).
        :param data_urls: http(s) URLs the server downloads.
        :param callback: optional callback settings.
        """
        from airflow_provider_sestek.hooks.upload import TrainingRequest, check_data_file, refuse_colliding_names

        api.validate_model_id(model_id)
        api.validate_project_name(project_name)
        files = [check_data_file(f, i) for i, f in enumerate(api.as_list(data_files, "data_files"))]
        refuse_colliding_names(files)
        urls = [api.validate_http_url(u, f"data_urls[{i}]") for i, u in enumerate(api.as_list(data_urls, "data_urls"))]
        if not files and not urls:
            raise SestekValidationError("data_files", None, "give at least one of data_files or data_urls")
        api.validate_callback(callback)
        return TrainingRequest(model_id, project_name, tuple(files), tuple(urls), callback)

    def submit_training(
        self,
        model_id: str | TrainingRequest,
        project_name: str | None = None,
        data_files: Iterable[str | os.PathLike[str]] | str | None = (),
        data_urls: Iterable[str] | str | None = (),
        callback: api.CallbackConfig | None = None,
    ) -> dict[str, Any]:
        """
        Start a Generative-QA training, streaming the files one at a time (memory stays flat whatever their
        size, and one file is open at a time whatever their number).

        Everything is validated before any request. The POST is retried only when it certainly did not
        reach the server (connection refused, 429); after a dropped connection or a gateway error the
        error is raised (``SestekTransportError.maybe_sent``, ``SestekApiError``) and the caller checks
        the progress before trying again: the operator re-attaches to the training it finds.

        :param model_id: lowercase letters, digits and ``-``, at most 63 characters (or a request from
            :meth:`prepare_training`, then the other arguments are ignored).
        :param project_name: Sestek project name.
        :param data_files: local paths or object-storage URLs (``s3://``, ``file://`` ...), one ``dataFiles`` part each.
        :param data_urls: http(s) URLs the server downloads, one ``dataUrls`` field each.
        :param callback: optional callback settings.
        :return: the experiment object the server returned.
        """
        from airflow_provider_sestek.hooks.flow import Call
        from airflow_provider_sestek.hooks.upload import MultipartBody, TrainingRequest

        if isinstance(model_id, TrainingRequest):
            request = model_id
        else:
            request = self.prepare_training(model_id, project_name or "", data_files, data_urls, callback)
        fields = api.training_form_fields(request.model_id, request.project_name, request.data_urls, request.callback)
        parts: list[tuple[str, Any]] = list(fields)
        parts += [("dataFiles", (f.name, f, f.content_type)) for f in request.data_files]
        cfg = self.config
        url = api.train_url(cfg.base_url)
        self.log.info(
            "Submitting Sestek training of model %s (project %r): %d file(s), %d URL(s)",
            request.model_id,
            request.project_name,
            len(request.data_files),
            len(request.data_urls),
        )
        call = Call(
            "POST",
            url,
            "train",
            lambda status, body, secrets: api.parse_experiment(status, body, url, secrets),
            idempotent=False,
            upload=lambda: MultipartBody(parts),
        )
        return self._transport.run(self._flow(cfg).call(call))

    def ask(
        self,
        model_id: str,
        query: str | Sequence[str],
        prompt: str | None = None,
        chat_history: Sequence[Any] | None = None,
        use_semantic_cache: bool | None = None,
        semantic_cache_threshold: float | None = None,
        chat_histories: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """
        Ask the published model; uses the inference client's token.

        :param model_id: the model id.
        :param query: one question or a list of questions.
        :param prompt: optional instructions.
        :param chat_history: ``[user, assistant]`` message pairs.
        :param use_semantic_cache: let the server answer from its semantic cache.
        :param semantic_cache_threshold: similarity needed for a cache hit (0-1).
        :param chat_histories: one chat history per question, instead of ``chat_history`` for all.
        :return: ``{"result": [...]}``, one result per question.
        """
        from airflow_provider_sestek.hooks.flow import Call

        api.validate_model_id(model_id)
        queries = api.as_list(query, "query")
        body = api.inference_body(
            queries, prompt, chat_history, use_semantic_cache, semantic_cache_threshold, chat_histories
        )
        cfg = self.config
        if not cfg.tenant:
            raise SestekConfigError("tenant", "the tenant name is needed to reach a published model")
        url = api.inference_url(cfg.base_url, cfg.tenant, model_id)
        call = Call(
            "POST",
            url,
            "inference",
            lambda status, raw, secrets: api.parse_inference(status, raw, url, secrets),
            kind="inference",
            json_body=body,
        )
        return {"result": self._transport.run(self._flow(cfg).call(call))}

    def test_connection(self) -> tuple[bool, str]:
        """Get a token, then make one authenticated call; the UI "Test" button shows the message."""
        try:
            cfg = self.config
            self.get_token("training")
            try:
                self.get_training_progress(CONNECTION_TEST_MODEL_ID)
            except SestekApiError as exc:
                if exc.status != 404:  # 404: authenticated and answered, just no such model.
                    raise
            message = f"Connected to {cfg.base_url}: token from {cfg.token_url} accepted by the training API."
            if cfg.inference_client_id:
                self.get_token("inference")
                message += " Inference client token obtained."
            return True, message
        except SestekError as exc:
            return False, str(exc)

    # --- async calls (in the triggerer) --------------------------------------------------------------

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[None]:
        """
        Keep the pooled async connections of the running event loop open for the block.

        Async calls outside it work too, but close their connection when nothing else on the loop is in
        flight; wrap a series of calls (as the trigger does for its wait) to reuse connections.
        """
        from airflow_provider_sestek.hooks.transport_async import ASYNC_CLIENTS

        async with ASYNC_CLIENTS.lease():
            yield

    async def _arun(self, cfg: SestekConnectionConfig, flow: Flow[T]) -> T:
        transport = self._async_transport
        if transport is None:
            from airflow_provider_sestek.hooks.transport_async import AsyncTransport

            transport = self._async_transport = AsyncTransport(cfg.verify, self.async_max_connections)
        return await transport.run(flow)

    async def aget_token(self, kind: ClientKind = "training") -> str:
        """
        Async twin of :meth:`get_token`, sharing the same process-wide cache.

        :param kind: ``training`` or ``inference``.
        """
        cfg = await self.aconfig()
        return await self._arun(cfg, self._flow(cfg).token(kind))

    async def aget_training_progress(self, model_id: str, *, stop_at: float | None = None) -> api.TrainingProgress:
        """
        Async twin of :meth:`get_training_progress`.

        :param model_id: the model id.
        :param stop_at: wall-clock time (epoch seconds) after which no retry starts (a wait's deadline).
        """
        cfg = await self.aconfig()
        return await self._arun(cfg, self._flow(cfg).call(self._progress_call(cfg, model_id), stop_at))


USER_AGENT = f"airflow-provider-sestek/{__version__}"


__all__ = [
    "MAX_RESPONSE_BYTES",
    "TOKEN_CACHE",
    "SestekConnectionConfig",
    "SestekHook",
    "clear_token_cache",
]


def _comms_answer_only_synchronously() -> bool:
    """Whether this process talks to an Airflow supervisor whose comms lack ``asend`` (in-process test runs)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # Airflow 2: no supervisor
        return False
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return comms is not None and not hasattr(comms, "asend")
