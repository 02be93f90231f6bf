"""Operators for Sestek AI Generative-QA: train a model (and wait until published), ask it questions."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, conf, mask_secret

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekError,
    SestekModelNotPublished,
    SestekTrainingInProgress,
    SestekTransportError,
    SestekValidationError,
)
from airflow_provider_sestek.hooks.sestek import SestekHook, TrainingRequest
from airflow_provider_sestek.links.sestek import PORTAL_URL_XCOM_KEY, SestekModelLink, render_portal_url
from airflow_provider_sestek.waiting import ProgressWatcher, raise_for_outcome, result_dict

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Key in the task state store (Airflow 3.3 durable execution) that remembers this task's submission.
STATE_KEY = "sestek_training"


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def _seconds(value: float | timedelta | None, field: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise SestekValidationError(field, value, "must be a non-negative number of seconds or a timedelta")
    return float(seconds)


def _check_poll_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SestekValidationError("poll_interval", value, "must be a positive number of seconds")
    return float(value)


class SestekTrainOperator(BaseOperator):
    """
    Submit a Sestek Generative-QA training and (by default) wait until the model is trained and published.

    Never starts a second training for the same task: before submitting it reads the model's progress and
    attaches to a training that is still running; after a submit whose fate is unknown (dropped
    connection, gateway error, "still in progress" answer) it checks again and attaches. On Airflow 3.3+
    the submission is recorded in the task state store, so a retry after a worker crash attaches even when
    the training has already finished.

    The public API has no cancel call: a timeout or a task kill leaves the training running on Sestek.

    :param model_id: model id: lowercase a-z, digits and ``-``, not starting or ending with ``-``, at most
        63 characters. Re-using an id retrains that model and keeps its inference endpoint. (templated)
    :param project_name: Sestek project name. (templated)
    :param data_files: a path or list of paths of training files; local paths or object-storage URLs
        (``s3://``, ``gs://``, ``file://``) that Airflow's ``ObjectStoragePath`` understands. (templated)
    :param data_urls: a URL or list of http(s) URLs Sestek downloads the training data from. (templated)
    :param callback_conn_id: connection holding the callback settings: host = callback URL, login/password =
        client id/secret, extra ``identity_url`` = callback token service. The recommended way.
    :param callback_address: URL Sestek notifies on "train failed" / "train success". (templated)
    :param callback_identity_address: token service Sestek authenticates against for the callback. (templated)
    :param callback_client_id: client id for that token service. (templated)
    :param callback_client_secret: its secret; never templated, masked in logs. Prefer ``callback_conn_id``.
    :param sestek_conn_id: the Sestek connection. (templated)
    :param wait_for_completion: wait for the training to finish; ``False`` returns right after submit.
    :param wait_for_inference: after ``Completed`` keep polling until the inference endpoint is Running
        (polling is what publishes the model).
    :param poll_interval: seconds between progress polls.
    :param timeout: longest wait, in seconds or as a timedelta; ``None`` waits forever.
    :param deferrable: wait in the triggerer, freeing the worker slot; defaults to
        ``[operators] default_deferrable``.
    :param max_consecutive_failures: failed polls in a row tolerated while waiting.
    :return: ``{"model_id", "training_status", "inference_status", "percent"}``; ``model_id`` is also
        pushed to XCom under key ``model_id`` right after submit.
    """

    template_fields: Sequence[str] = (
        "model_id",
        "project_name",
        "data_files",
        "data_urls",
        "callback_address",
        "callback_identity_address",
        "callback_client_id",
        "sestek_conn_id",
    )
    template_fields_renderers = {"data_files": "json", "data_urls": "json"}
    ui_color = "#dbeafe"
    operator_extra_links = (SestekModelLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        project_name: str,
        data_files: str | Sequence[str] | None = None,
        data_urls: str | Sequence[str] | None = None,
        callback_conn_id: str | None = None,
        callback_address: str | None = None,
        callback_identity_address: str | None = None,
        callback_client_id: str | None = None,
        callback_client_secret: str | None = None,
        sestek_conn_id: str = SestekHook.default_conn_name,
        wait_for_completion: bool = True,
        wait_for_inference: bool = True,
        poll_interval: float = 30,
        timeout: float | timedelta | None = None,
        deferrable: bool | None = None,
        max_consecutive_failures: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.project_name = project_name
        self.data_files = data_files
        self.data_urls = data_urls
        self.callback_conn_id = callback_conn_id
        self.callback_address = callback_address
        self.callback_identity_address = callback_identity_address
        self.callback_client_id = callback_client_id
        # Private and never templated: a secret must not reach rendered fields or the serialized DAG.
        self._callback_client_secret = callback_client_secret
        self.sestek_conn_id = sestek_conn_id
        self.wait_for_completion = wait_for_completion
        self.wait_for_inference = wait_for_inference
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_consecutive_failures = max_consecutive_failures
        #: The rendered portal link, once known (read by :class:`SestekModelLink`).
        self.sestek_portal_url: str | None = None

    @cached_property
    def hook(self) -> SestekHook:
        """The hook on ``sestek_conn_id``."""
        return SestekHook(self.sestek_conn_id)

    # --- validation -------------------------------------------------------------------------------------

    def _callback(self) -> api.CallbackConfig | None:
        address, identity = self.callback_address, self.callback_identity_address
        client_id, secret = self.callback_client_id, self._callback_client_secret
        if self.callback_conn_id:
            conn = BaseHook.get_connection(self.callback_conn_id)
            host = conn.host or ""
            address = address or (host if "://" in host or not host else f"https://{host}")
            identity = identity or conn.extra_dejson.get("identity_url")
            client_id = client_id or conn.login
            secret = secret or conn.password
        if secret:
            mask_secret(secret)
        if not address:
            if identity or client_id or secret:
                raise SestekValidationError(
                    "callback_address", None, "is required when callback identity or client settings are given"
                )
            return None
        return api.CallbackConfig(address, identity or None, client_id or None, secret or None)

    def _prepare(self) -> tuple[TrainingRequest, float | None]:
        """Validate every argument after templating; no Sestek call is made."""
        _check_poll_interval(self.poll_interval)
        timeout = _seconds(self.timeout, "timeout")
        request = self.hook.prepare_training(
            self.model_id, self.project_name, self.data_files, self.data_urls, self._callback()
        )
        # Touch the connection now so a misconfigured one fails before anything is sent.
        _ = self.hook.config
        return request, (time.time() + timeout if timeout is not None else None)

    # --- submit or attach --------------------------------------------------------------------------------

    def _progress_or_none(self) -> api.TrainingProgress | None:
        """The model's progress, or ``None`` when the server does not know the model (404)."""
        try:
            return self.hook.get_training_progress(self.model_id)
        except SestekApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _attach(self, progress: api.TrainingProgress, why: str) -> api.TrainingProgress:
        self.log.info(
            "Attaching to the training of model %s (%s) instead of submitting a second one: %s",
            self.model_id,
            progress.describe(),
            why,
        )
        return progress

    def _submit_or_attach(self, request: TrainingRequest, context: Context) -> api.TrainingProgress:
        store = context.get("task_state_store")
        stored = store.get(STATE_KEY) if store is not None else None
        if isinstance(stored, dict) and stored.get("model_id") == self.model_id:
            progress = self._progress_or_none()
            if progress is not None and progress.training_status is not api.TrainingStatus.FAILED:
                return self._attach(progress, "an earlier try of this task submitted it")
        progress = self._progress_or_none()
        if progress is not None and progress.is_active:
            return self._attach(progress, "a training of this model id is already running")
        try:
            experiment = self.hook.submit_training(request)
        except SestekTrainingInProgress:
            progress = self._progress_or_none()
            if progress is None:
                raise
            return self._attach(progress, "the server says a training of this model id is in progress")
        except (SestekTransportError, SestekApiError) as exc:
            if isinstance(exc, SestekApiError) and exc.status < 500 and not 200 <= exc.status < 300:
                raise  # a clear refusal; a 2xx with an unreadable body did create the training
            # The request may or may not have created the training: the progress endpoint decides.
            self.log.warning(
                "Submit of model %s ended without a clear answer (%s); checking progress", self.model_id, exc
            )
            progress = self._progress_or_none()
            if progress is not None and progress.is_active:
                return self._attach(progress, "the interrupted submit did create it")
            self.log.info("No running training of %s found; submitting once more", self.model_id)
            experiment = self.hook.submit_training(request)
        self.log.info(
            "Submitted Sestek training of model %s (experiment %s, status %s)",
            self.model_id,
            experiment.get("id"),
            experiment.get("statusMessage"),
        )
        if store is not None:
            store.set(STATE_KEY, {"model_id": self.model_id, "experiment_id": experiment.get("id")})
        return api.parse_progress({"percent": experiment.get("percent", 0), "trainingStatus": "Initialized"})

    # --- execute ---------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, submit (or attach), then wait in the worker or in the triggerer."""
        request, end_time = self._prepare()
        progress = self._submit_or_attach(request, context)
        ti = context["ti"]
        ti.xcom_push(key="model_id", value=self.model_id)
        if self._portal_url():
            ti.xcom_push(key=PORTAL_URL_XCOM_KEY, value=self.sestek_portal_url)
        if not self.wait_for_completion:
            return result_dict(self.model_id, progress)
        if self.deferrable:
            self._defer(end_time)
        return self._wait(end_time)

    def _portal_url(self) -> str:
        """Render the connection's portal link for this model ("" when it defines none)."""
        cfg = self.hook.config
        self.sestek_portal_url = render_portal_url(cfg.portal_url, self.model_id, cfg.tenant) or ""
        return self.sestek_portal_url

    def _defer(self, end_time: float | None) -> None:
        from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger

        self.log.info("Waiting for model %s in the triggerer (worker slot released)", self.model_id)
        self.defer(
            trigger=SestekTrainingTrigger(
                model_id=self.model_id,
                sestek_conn_id=self.sestek_conn_id,
                poll_interval=float(self.poll_interval),
                end_time=end_time,
                wait_for_inference=self.wait_for_inference,
                max_consecutive_failures=self.max_consecutive_failures,
            ),
            method_name="execute_complete",
        )

    def _wait(self, end_time: float | None) -> dict[str, Any]:
        return wait_sync(
            self.hook,
            ProgressWatcher(
                self.model_id,
                wait_for_inference=self.wait_for_inference,
                poll_interval=float(self.poll_interval),
                end_time=end_time,
                max_consecutive_failures=self.max_consecutive_failures,
                logger=self.log,
            ),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger: validate the event, return the result or raise.

        :param context: the task context.
        :param event: the trigger event.
        """
        self._portal_url()
        return raise_for_outcome(self.model_id, event)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage: the training data (files and URLs) are inputs, the trained model is the output.

        Called by the OpenLineage provider (when installed) after the task succeeded.

        :param task_instance: the finished task instance (unused).
        """
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs = [Dataset(namespace=ns, name=name) for ns, name in map(_lineage_name, self._lineage_sources())]
        cfg = self.hook.config
        host = urlsplit(cfg.base_url).netloc
        model = f"{cfg.tenant}/{self.model_id}" if cfg.tenant else str(self.model_id)
        return OperatorLineage(inputs=inputs, outputs=[Dataset(namespace=f"sestek://{host}", name=model)])

    def _lineage_sources(self) -> list[str]:
        sources = [os.fspath(f) for f in api.as_list(self.data_files)]  # type: ignore[arg-type]
        return sources + api.as_list(self.data_urls)


def _lineage_name(location: str) -> tuple[str, str]:
    """OpenLineage namespace and name of a data location (``file://host`` + path, ``s3://bucket`` + key ...)."""
    if "://" not in location:
        return f"file://{socket.getfqdn()}", os.path.abspath(location)
    parts = urlsplit(location)
    if parts.scheme == "file":
        return f"file://{parts.netloc or socket.getfqdn()}", parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") if parts.scheme not in (
        "http",
        "https",
    ) else parts.path


def wait_sync(hook: SestekHook, watcher: ProgressWatcher) -> dict[str, Any]:
    """
    Poll in the worker until the watcher decides (the sync twin of the trigger's loop).

    :param hook: the hook to poll with.
    :param watcher: the waiting rules.
    """
    while True:
        try:
            outcome = watcher.on_progress(hook.get_training_progress(watcher.model_id))
        except SestekError as exc:
            outcome = watcher.on_error(exc)
        outcome = outcome or watcher.check_deadline()
        if outcome is not None:
            return raise_for_outcome(watcher.model_id, outcome.to_event(watcher.model_id))
        time.sleep(watcher.sleep_seconds())


class SestekQuestionAnsweringOperator(BaseOperator):
    """
    Ask a published Sestek Generative-QA model one or more questions (uses the inference client).

    :param model_id: the model id. (templated)
    :param query: one question. (templated)
    :param queries: several questions, answered in one call. (templated)
    :param prompt: optional instructions for the model. (templated)
    :param chat_history: ``[user, assistant]`` message pairs giving context. (templated)
    :param use_semantic_cache: let the server answer from its semantic cache.
    :param semantic_cache_threshold: similarity needed for a cache hit, 0-1.
    :param sestek_conn_id: the Sestek connection. (templated)
    :return: one dict per question: ``query``, ``answer``, ``standalone_question``, ``sources`` (file names).
    """

    template_fields: Sequence[str] = ("model_id", "query", "queries", "prompt", "chat_history", "sestek_conn_id")
    template_fields_renderers = {"queries": "json", "chat_history": "json"}
    ui_color = "#dcfce7"

    def __init__(
        self,
        *,
        model_id: str,
        query: str | None = None,
        queries: Sequence[str] | None = None,
        prompt: str | None = None,
        chat_history: Sequence[Any] | None = None,
        use_semantic_cache: bool | None = None,
        semantic_cache_threshold: float | None = None,
        sestek_conn_id: str = SestekHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.query = query
        self.queries = queries
        self.prompt = prompt
        self.chat_history = chat_history
        self.use_semantic_cache = use_semantic_cache
        self.semantic_cache_threshold = semantic_cache_threshold
        self.sestek_conn_id = sestek_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Ask, log each answer, return the answers."""
        api.validate_model_id(self.model_id)
        questions = api.as_list(self.query) + api.as_list(self.queries)
        if not questions:
            raise SestekValidationError("query", None, "give query or queries")
        hook = SestekHook(self.sestek_conn_id)
        try:
            response = hook.ask(
                self.model_id,
                questions,
                prompt=self.prompt,
                chat_history=self.chat_history,
                use_semantic_cache=self.use_semantic_cache,
                semantic_cache_threshold=self.semantic_cache_threshold,
            )
        except SestekModelNotPublished as exc:
            try:
                state = hook.get_training_progress(self.model_id).describe()
            except SestekError:
                state = "unknown"
            raise SestekModelNotPublished(
                method=exc.method,
                endpoint=exc.endpoint,
                status=exc.status,
                message=(
                    f"model {self.model_id!r} is not published (training progress: {state}); train it with "
                    f"SestekTrainOperator(wait_for_inference=True) first. Server said: {exc.message}"
                ),
            ) from exc
        answers = []
        for question, result in zip(questions, response["result"], strict=False):
            answer = {
                "query": question,
                "answer": result.get("answer"),
                "standalone_question": result.get("standalone_question"),
                "sources": [d.get("source") for d in result.get("docs") or [] if isinstance(d, dict)],
            }
            self.log.info(
                "Q: %s\nA: %s (sources: %s)", question, answer["answer"], ", ".join(map(str, answer["sources"]))
            )
            answers.append(answer)
        return answers
