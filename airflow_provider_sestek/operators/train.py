"""``SestekTrainOperator``: submit a Generative-QA training (or attach to one) and wait until published."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekTrainingInProgress,
    SestekTransportError,
)
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.links.sestek import PORTAL_URL_XCOM_KEY, SestekModelLink, render_portal_url
from airflow_provider_sestek.operators._assets import emit_model_event, with_model_alias
from airflow_provider_sestek.operators._callback import resolve_callback
from airflow_provider_sestek.operators._common import (
    default_deferrable,
    defer_wait,
    raise_for_outcome,
    success_summary,
    wait_sync,
)
from airflow_provider_sestek.operators._durable import Action, DurableTraining, with_success_callback
from airflow_provider_sestek.operators._lineage import training_lineage
from airflow_provider_sestek.operators._mapping import (
    guarded_partial,
    refuse_default_args_secret,
    refuse_mapped_secret,
)
from airflow_provider_sestek.waiting import WaitSpec, short
from airflow_provider_sestek.waiting_args import (
    DEFAULT_HEARTBEAT_INTERVAL,
    check_failures,
    check_heartbeat_interval,
    check_poll_interval,
    seconds,
)
from airflow_provider_sestek.waiting_outcomes import result_dict

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_sestek.hooks.upload import TrainingRequest


class SestekTrainOperator(BaseOperator):
    """
    Submit a Sestek Generative-QA training and (by default) wait until the model is trained and published.

    Never starts a second training for one run of the task, and retrains when the task is run again after it
    succeeded. With ``durable`` (Airflow 3.3+, the task state store) the task remembers its training:

    ======================================================== ==================================================
    situation                                                 what the task does
    ======================================================== ==================================================
    a retry (crash, failure, timeout); the training runs      attaches to it and waits
    a retry; the training finished, the task never succeeded  returns that training's result, no new training
    a retry after ``execute`` returned (XCom, outlet events,  returns the result ``execute`` returned, no
    post_execute or the worker failed before success)         new training and no request
    a clear or re-run of a task that succeeded with it        submits a new training with the current data
    the stored training failed                                submits a new training
    ======================================================== ==================================================

    "Succeeded" means Airflow recorded the success: the operator's own success callback (run before the
    user's) marks the record. A retry that attaches to, or collects, a training an earlier try submitted
    cannot tell it from a later training of the same model id started elsewhere (the progress endpoint names
    no training): it says so in a warning, and reports ``experiment_id`` as unknown.

    Before submitting it also reads the model's progress and attaches to a training of the same model id
    that is still running (the server would refuse a second one). A submit whose outcome is unknown (dropped
    connection, gateway error, unreadable answer) ends in attaching or in exactly one more submit: the
    progress is read again, tolerating "not found" for a few polls, and a "still in progress" answer
    attaches.

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
    :param callback_client_secret: its secret; never templated, masked in logs, refused in ``partial()`` and
        ``expand()`` (mapped arguments are serialized). Prefer ``callback_conn_id``.
    :param sestek_conn_id: the Sestek connection. (templated)
    :param wait_for_completion: wait for the training to finish; ``False`` returns right after submit.
    :param wait_for_inference: after ``Completed`` keep polling until the inference endpoint is Running
        (polling is what publishes the model).
    :param poll_interval: seconds between progress polls.
    :param timeout: longest wait, in seconds or as a timedelta; ``None`` waits forever.
    :param deferrable: wait in the triggerer, freeing the worker slot; defaults to
        ``[operators] default_deferrable``.
    :param max_consecutive_failures: failed polls in a row tolerated while waiting.
    :param durable: remember the training in the task state store (Airflow 3.3+) and follow the table above,
        as ``ResumableJobMixin`` does; ``False`` neither reads nor writes the store: every run submits.
    :param heartbeat_interval: seconds (or a timedelta) between two "Still waiting for model ..." lines in the
        task log while waiting (status, percent, time elapsed and left before the deadline); no extra request.
    :param emit_model_asset: emit the published model's asset event (below); ``False`` leaves it to a later
        task, e.g. a ``SestekEvaluateModelOperator`` that emits it only for a model that passed its golden set.
    :return: ``{"model_id", "training_status", "inference_status", "percent"}``; ``model_id`` is also
        pushed to XCom under key ``model_id`` right after submit (and ``experiment_id`` when known).

    The published model is an asset event on ``sestek://{host[:port]}/{tenant}/{model_id}``, emitted through the
    alias ``sestek-trained-models`` added to ``outlets`` (the user's own are kept); see :mod:`.._assets`.
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
    #: Progress looks (``poll_interval`` apart) after a submit of unknown outcome before submitting again: the
    #: progress endpoint may answer 404 for a moment after a training was created.
    unknown_submit_looks = 3

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
        durable: bool = True,
        heartbeat_interval: float | timedelta = DEFAULT_HEARTBEAT_INTERVAL,
        emit_model_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        refuse_default_args_secret(kwargs.get("default_args"))
        kwargs["outlets"] = with_model_alias(kwargs.get("outlets"))
        super().__init__(**kwargs)
        # First among the success callbacks: the durable record learns that Airflow recorded the success.
        self.on_success_callback = with_success_callback(self.on_success_callback)
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
        self.durable = durable
        self.heartbeat_interval = heartbeat_interval
        self.emit_model_asset = emit_model_asset
        #: The rendered portal link, once known (read by :class:`SestekModelLink`).
        self.sestek_portal_url: str | None = None
        #: The Sestek experiment id of the training this run submitted or resumed (the asset event's extra).
        self._experiment_id: str | None = None
        #: When this run's train POST was answered (the wait then ignores the previous training's final status).
        self._submitted_at: float | None = None

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """
        ``BaseOperator.partial``, refusing ``callback_client_secret`` here and in the ``expand()`` that follows.

        :param kwargs: the partial arguments.
        """
        refuse_mapped_secret(kwargs, "partial")
        refuse_default_args_secret(kwargs.get("default_args"))
        kwargs["outlets"] = with_model_alias(kwargs.get("outlets"))
        partial = super().partial(**kwargs)  # type: ignore[misc]
        dag = partial.kwargs.get("dag")
        refuse_default_args_secret(getattr(dag, "default_args", None))
        partial.__class__ = guarded_partial(type(partial))
        return partial

    @cached_property
    def hook(self) -> SestekHook:
        """The hook on ``sestek_conn_id``."""
        return SestekHook(self.sestek_conn_id)

    # --- validation -------------------------------------------------------------------------------------

    def _callback(self) -> api.CallbackConfig | None:
        return resolve_callback(
            self.callback_conn_id,
            self.callback_address,
            self.callback_identity_address,
            self.callback_client_id,
            self._callback_client_secret,
        )

    def _prepare(self) -> tuple[TrainingRequest, float | None]:
        """Validate every argument after templating; no Sestek call is made."""
        check_poll_interval(self.poll_interval)
        check_failures(self.max_consecutive_failures)
        for flag in ("wait_for_completion", "wait_for_inference", "durable", "emit_model_asset"):
            api.validate_flag(getattr(self, flag), flag)
        check_heartbeat_interval(self.heartbeat_interval)
        timeout = seconds(self.timeout, "timeout")
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

    def _look(self, looks: int) -> api.TrainingProgress | None:
        """
        The progress of a training believed to exist: "not found" is retried ``looks`` times in all,
        ``poll_interval`` apart (the endpoint may not show a training created a moment ago).
        """
        pacing = self._spec(None).watcher(self.log)  # the wait rule paces these looks, as it paces every poll
        for look in range(max(looks, 1)):
            progress = self._progress_or_none()
            if progress is not None:
                return progress
            if look + 1 < looks:
                time.sleep(pacing.sleep_seconds())
        return None

    def _attach(self, progress: api.TrainingProgress, why: str) -> api.TrainingProgress:
        self.log.info(
            "Attaching to the training of model %s (%s) instead of submitting a second one: %s",
            self.model_id,
            progress.describe(),
            why,
        )
        return progress

    def _submit_or_attach(
        self, request: TrainingRequest, durable: DurableTraining
    ) -> tuple[api.TrainingProgress | None, bool, dict[str, Any] | None]:
        """
        Submit, or attach to the training that counts, as the durable rule says: ``(progress, done, result)``,
        ``result`` being what an earlier try already returned.
        """
        step = durable.begin()
        if step.action is Action.LOOK:
            step = durable.after_look(self._look(self.unknown_submit_looks))
        if step.action is Action.COLLECT:
            return step.progress, True, step.result
        if step.action is Action.ATTACH and step.progress is not None:
            return self._attach(step.progress, "an earlier try of this task submitted it"), False, None
        progress = self._progress_or_none()
        if progress is not None and progress.is_active:
            durable.attached()
            return self._attach(progress, "a training of this model id is already running"), False, None
        durable.submitting(first_training=progress is None)
        experiment, attached_to = self._submit_once(request)
        if attached_to is not None:
            durable.attached()
            return attached_to, False, None
        # The server's id goes to XCom, the record and the asset event: bounded, whatever it sends.
        experiment_id = short(experiment["id"], 200) if experiment.get("id") else None
        self.log.info(
            "Submitted Sestek training of model %s (experiment %s, status %s)",
            self.model_id,
            experiment_id,
            short(experiment.get("statusMessage"), 100),
        )
        durable.submitted(experiment_id)
        self._submitted_at = time.time()
        progress = api.parse_progress({"percent": experiment.get("percent", 0), "trainingStatus": "Initialized"})
        return progress, False, None

    def _submit_once(self, request: TrainingRequest) -> tuple[dict[str, Any], api.TrainingProgress | None]:
        """
        Exactly one training: ``(experiment, None)`` after an answered submit, ``({}, progress)`` after attaching.

        A submit of unknown outcome is followed by progress looks (a 404 tolerated ``unknown_submit_looks``
        times) and at most one more submit; a "still in progress" answer attaches once the training shows.
        """
        for attempt in (1, 2):
            try:
                return self.hook.submit_training(request), None
            except SestekTrainingInProgress:
                progress = self._look(self.max_consecutive_failures)
                if progress is None:
                    raise
                return {}, self._attach(progress, "the server says a training of this model id is in progress")
            except (SestekTransportError, SestekApiError) as exc:
                if isinstance(exc, SestekApiError) and exc.status < 500 and not 200 <= exc.status < 300:
                    raise  # a clear refusal; a 2xx with an unreadable body did create the training
                # The request may or may not have created the training: the progress endpoint decides.
                self.log.warning(
                    "Submit of model %s ended without a clear answer (%s); checking progress", self.model_id, exc
                )
                progress = self._look(self.unknown_submit_looks)
                if progress is not None and progress.is_active:
                    return {}, self._attach(progress, "the interrupted submit did create it")
                if attempt == 2:
                    raise
                self.log.info("No running training of %s found; submitting once more", self.model_id)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- execute ---------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, submit (or attach, or collect a finished training), then wait in the worker or triggerer."""
        request, end_time = self._prepare()
        durable = DurableTraining.of(self, context, end_time)
        progress, done, stored = self._submit_or_attach(request, durable)
        ti = context["ti"]
        ti.xcom_push(key="model_id", value=self.model_id)
        if durable.claimed_experiment_id:
            ti.xcom_push(key="experiment_id", value=durable.claimed_experiment_id)
        if self._portal_url():
            ti.xcom_push(key=PORTAL_URL_XCOM_KEY, value=self.sestek_portal_url)
        if stored is not None:
            return self._succeeded(context, durable, stored, restarted=False)
        if done or not self.wait_for_completion:
            return self._succeeded(context, durable, result_dict(self.model_id, progress), restarted=False)
        if self.deferrable:
            self._defer(end_time)
        # What the submit (or attach) reported is the last status known, should no poll fit before the deadline.
        watcher = self._spec(end_time).watcher(self.log, known=progress)
        result = wait_sync(
            self.hook,
            watcher,
            experiment_id=durable.submitted_experiment_id,
            portal_url=self.sestek_portal_url or None,
        )
        return self._succeeded(context, durable, result, restarted=watcher.restarted, started_at=watcher.started)

    def _defer(self, end_time: float | None) -> None:
        self.log.info("Waiting for model %s in the triggerer (worker slot released)", self.model_id)
        spec = self._spec(end_time)
        defer_wait(self, spec, sestek_conn_id=self.sestek_conn_id, request_deadline=self.hook.config.timeout)

    def _spec(self, end_time: float | None) -> WaitSpec:
        return WaitSpec(
            self.model_id,
            wait_for_inference=self.wait_for_inference,
            poll_interval=float(self.poll_interval),
            end_time=end_time,
            max_consecutive_failures=self.max_consecutive_failures,
            submitted_at=self._submitted_at,
            heartbeat_interval=check_heartbeat_interval(self.heartbeat_interval),
            # The duration reported counts from the submit, or from now for a training attached to.
            started_at=self._submitted_at if self._submitted_at is not None else time.time(),
        )

    def _succeeded(
        self,
        context: Context,
        durable: DurableTraining,
        result: dict[str, Any],
        restarted: bool,
        started_at: float | None = None,
    ) -> dict[str, Any]:
        """
        ``execute`` returns ``result``: the record says so (a retry returns it again; Airflow's success, through
        the success callback, makes a clear train anew); emit the published model's asset event; log the
        summary line of a trained model (``started_at``: when the submit was answered or the wait started).
        """
        claimed = durable.completed(result, restarted)
        self._experiment_id = claimed
        unclaimed = durable.submitted_experiment_id if claimed is None else None
        if self.emit_model_asset:
            emit_model_event(
                context, self.hook.config, result, claimed, self.log, unclaimed, sestek_conn_id=self.sestek_conn_id
            )
        if summary := success_summary(result, claimed, started_at, since_submit=claimed is not None):
            self.log.info("%s", summary)
        return result

    def _portal_url(self) -> str:
        """Render the connection's portal link for this model ("" when it defines none)."""
        cfg = self.hook.config
        self.sestek_portal_url = render_portal_url(cfg.portal_url, self.model_id, cfg.tenant) or ""
        return self.sestek_portal_url

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger: validate the event, return the result or raise.

        :param context: the task context.
        :param event: the trigger event.
        """
        self._portal_url()
        durable = DurableTraining.of(self, context, None)
        if durable.store is None and (ti := context.get("ti")) is not None:
            durable.resumed(ti.xcom_pull(task_ids=self.task_id, key="experiment_id", map_indexes=ti.map_index))
        result = raise_for_outcome(
            self.model_id,
            event,
            experiment_id=durable.submitted_experiment_id,
            portal_url=self.sestek_portal_url or None,
        )
        restarted = isinstance(event, dict) and event.get("restarted") is True
        started_at = event.get("started_at") if isinstance(event, dict) else None
        return self._succeeded(context, durable, result, restarted=restarted, started_at=started_at)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage (called by its provider after success): data files and URLs in, the model out (named as
        its asset); ``user:password@`` is stripped from every URL.

        :param task_instance: the finished task instance (unused).
        """
        sources = [os.fspath(f) for f in api.as_list(self.data_files)] + api.as_list(self.data_urls)
        return training_lineage(self.hook.config, self.model_id, sources)
