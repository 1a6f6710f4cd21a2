"""SegmentVideoBodyOperator: submit a CI video portrait-matting job and (by default) wait for it.

Rerun safety (a retried or cleared task never submits a second job while the first can still deliver):

1. Every job carries an idempotency marker ``airflow-idem:<16 hex>`` in UserData (sha256 of dag id, task id,
   run id and map index), appended to the user's own ``user_data`` within CI's 1024-character limit.
2. Where Airflow offers ``task_state_store`` (3.3+), the job id is stored right after submit.
3. Before submitting, the operator looks at the stored job id and lists recent SegmentVideoBody jobs of the bucket
   on the AI queues (``queueType=AIProcess``) with the same input object (``inputObject``, a documented exact match,
   cn 460/84766) and creation time within ``reattach_lookback``, and keeps those carrying the same marker:
   Submitted/Running/Pause -> reattach; Success with its output object present -> return it; Failed/Cancel (or no
   match) -> submit anew.
4. When that lookup itself fails (after the hook's retries of transient errors), nothing is submitted: the task
   fails with :class:`RerunLookupError`, naming the lookup's error. Not knowing whether a job already runs must
   never become a second paid job; the next try looks again.

Step 3 closes the window ResumableJobMixin documents (a worker dying between submit and persist), because the
marker travels with the job itself. The lookup takes no queue id: SubmitJob names no queue (seed
``ci-segment-video-body-submit-job.txt``: CI puts the job on the bucket's AI queue), so a user-given queue id could
only hide the earlier job.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow.exceptions import AirflowException

from airflow_provider_tencent_ci.common.config import default_deferrable
from airflow_provider_tencent_ci.constants import (
    AI_QUEUE_TYPE,
    DEFAULT_CONN_ID,
    JOB_ACTIVE_STATES,
    JOB_FAILED_STATES,
    JOB_LIST_MAX_SIZE,
    SEGMENT_VIDEO_BODY_TAG,
    JobState,
)
from airflow_provider_tencent_ci.exceptions import TencentCloudError
from airflow_provider_tencent_ci.jobs.callbacks import check_callback_base_url
from airflow_provider_tencent_ci.jobs.outcome import (
    JobOutcome,
    event_error,
    event_outcome,
    job_error,
    job_outcome,
    task_error,
)
from airflow_provider_tencent_ci.links.cos import CIJobLink
from airflow_provider_tencent_ci.operators._batch import cos_key
from airflow_provider_tencent_ci.operators.base import (
    CI_HOOK,
    TencentCloudBaseOperator,
    make_hook,
    openlineage_facets,
    tencentcloud_template_fields,
)
from airflow_provider_tencent_ci.params.video import (
    IDEMPOTENCY_MARKER_LEN,
    IDEMPOTENCY_PREFIX,
    SVB_SPEC,
    USER_DATA_USER_MAX_LEN,
    svb_request,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_tencent_ci.hooks.ci import CIHook

__all__ = [
    "IDEMPOTENCY_MARKER_LEN",
    "IDEMPOTENCY_PREFIX",
    "USER_DATA_USER_MAX_LEN",
    "RerunLookupError",
    "SegmentVideoBodyOperator",
    "build_svb_request",
]

_IDEM_RE = re.compile(r"airflow-idem:([0-9a-f]{16})")
TASK_STATE_JOB_KEY = "tencent_ci_job_id"
REATTACH_MAX_PAGES = 20


class RerunLookupError(TencentCloudError):
    """The look-up for an earlier job of this task failed, so no job was submitted (a rerun never pays twice)."""

    @classmethod
    def from_error(cls, err: TencentCloudError, job_bucket: str) -> RerunLookupError:
        message = (
            f"could not check whether an earlier try of this task already submitted a CI job in {job_bucket} "
            f"({err.message}). No job was submitted: submitting without knowing could pay for the same work twice. "
            "Retry the task once CI answers again (transient errors were already retried); if the error persists, "
            "fix its cause (e.g. the key needs permission to list and describe CI jobs), or set "
            "reattach_lookback=0 to skip the job-list lookup and accept the risk of a duplicate job."
        )
        error = cls(
            message,
            code=err.code,
            request_id=err.request_id,
            status_code=err.status_code,
            operation=err.operation,
        )
        error.retryable = err.retryable
        return error


def build_svb_request(values: Mapping[str, Any], *, skip_templated: bool = False) -> dict[str, Any]:
    """Validate the operator's parameters (``params.video.SVB_SPEC``) and build the ``<Request>`` body (without
    UserData's marker and Output).

    With ``skip_templated`` (construction time), values not known yet (Jinja, XComArg) are skipped and checked again
    after rendering. Every error is a ``ParameterValidationError`` naming the parameter, the value and the rule.
    """
    return svb_request(SVB_SPEC.validate(values, rendered=not skip_templated), SEGMENT_VIDEO_BODY_TAG)


def idempotency_key(dag_id: str, task_id: str, run_id: str, map_index: int | None) -> str:
    raw = f"{dag_id}\x1f{task_id}\x1f{run_id}\x1f{-1 if map_index is None else map_index}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def compose_user_data(idem: str, user_data: str | None) -> str:
    marker = f"{IDEMPOTENCY_PREFIX}{idem}"
    return f"{user_data};{marker}" if user_data else marker


def job_idempotency_key(job: Mapping[str, Any]) -> str | None:
    operation = job.get("Operation")
    user_data = operation.get("UserData") if isinstance(operation, Mapping) else None
    match = _IDEM_RE.search(user_data) if isinstance(user_data, str) else None
    return match.group(1) if match else None


# -- operator -----------------------------------------------------------------------------------------------
class SegmentVideoBodyOperator(TencentCloudBaseOperator["CIHook"]):
    """Submit a SegmentVideoBody job (video portrait matting) and wait for it; returns the final JobsDetail.

    :param bucket: source bucket (``name-appid``; ``-appid`` is appended from the connection when missing).
    :param input_object: source video key.
    :param output_object: result key; ``output_bucket`` (default ``bucket``) and ``output_region`` (default the
        connection's region) complete the Output.
    :param mode: Mask, Foreground or Combination.
    :param segment_type: HumanSeg, GreenScreenSeg or SolidColorSeg.
    :param background_red: ``background_green``, ``background_blue``: 0..255, Foreground mode only.
    :param background_logo_url: background file; required for Combination, same bucket as the source.
    :param binary_threshold: 0..255.
    :param remove_red: ``remove_green``, ``remove_blue``: 0..255, SolidColorSeg only.
    :param user_data: printable ASCII passed through; at most 994 characters (the rest holds the rerun marker).
    :param job_level: 0, 1 or 2.
    :param callback_url: CI's CallBack (http(s) URL, or ``no``); ``callback_format`` JSON/XML; ``callback_type``
        Url/TDMQ; ``callback_mq_config`` ``{"MqRegion", "MqMode", "MqName"}`` for TDMQ.
    :param use_callback_listener: set CallBack to the triggerer's listener and wait with CIJobCallbackTrigger
        (deferrable only; needs ``[tencent_ci] callback_base_url`` reachable by CI).
    :param wait_for_completion: wait for a terminal state (default True); False returns the submitted JobsDetail.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls (worker or trigger).
    :param callback_fallback_poll_interval: poll interval of the callback trigger's safety net.
    :param max_wait: give up after this long (seconds or timedelta); None waits for ever.
    :param fail_on_pause: fail when the job is in Pause (default False: keep waiting).
    :param cancel_on_kill: cancel the job when the task is killed (worker ``on_kill`` / trigger ``on_kill``).
    :param reattach_lookback: how far back to look for this task's earlier job before submitting.
    """

    hook_class = CI_HOOK
    params_spec = SVB_SPEC
    template_fields: Sequence[str] = tencentcloud_template_fields(*SVB_SPEC.template_fields)
    template_fields_renderers = {"callback_mq_config": "json"}
    operator_extra_links = (CIJobLink(),)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        bucket: str,
        input_object: str,
        output_object: str,
        output_bucket: str | None = None,
        output_region: str | None = None,
        mode: str = "Mask",
        segment_type: str = "HumanSeg",
        background_red: int | str | None = None,
        background_green: int | str | None = None,
        background_blue: int | str | None = None,
        background_logo_url: str | None = None,
        binary_threshold: int | str | None = None,
        remove_red: int | str | None = None,
        remove_green: int | str | None = None,
        remove_blue: int | str | None = None,
        user_data: str | None = None,
        job_level: int | str | None = None,
        callback_url: str | None = None,
        callback_format: str | None = None,
        callback_type: str | None = None,
        callback_mq_config: dict[str, str] | None = None,
        use_callback_listener: bool = False,
        tencentcloud_conn_id: str = DEFAULT_CONN_ID,
        region: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 30.0,
        callback_fallback_poll_interval: float = 300.0,
        max_wait: float | timedelta | None = None,
        fail_on_pause: bool = False,
        cancel_on_kill: bool = True,
        reattach_lookback: float | timedelta = timedelta(days=1),
        job_query_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(tencentcloud_conn_id=tencentcloud_conn_id, region=region, **kwargs)
        self.bucket = bucket
        self.input_object = input_object
        self.output_object = output_object
        self.output_bucket = output_bucket
        self.output_region = output_region
        self.mode = mode
        self.segment_type = segment_type
        self.background_red = background_red
        self.background_green = background_green
        self.background_blue = background_blue
        self.background_logo_url = background_logo_url
        self.binary_threshold = binary_threshold
        self.remove_red = remove_red
        self.remove_green = remove_green
        self.remove_blue = remove_blue
        self.user_data = user_data
        self.job_level = job_level
        self.callback_url = callback_url
        self.callback_format = callback_format
        self.callback_type = callback_type
        self.callback_mq_config = callback_mq_config
        self.use_callback_listener = use_callback_listener
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        # Durations are checked (and turned into seconds) with every other parameter once __init__ has returned.
        self.poll_interval: Any = poll_interval
        self.callback_fallback_poll_interval: Any = callback_fallback_poll_interval
        self.max_wait: Any = max_wait
        self.fail_on_pause = fail_on_pause
        self.cancel_on_kill = cancel_on_kill
        self.reattach_lookback: Any = reattach_lookback
        self.job_query_batch_size: Any = job_query_batch_size
        self._job_id: str | None = None
        self._job_bucket: str | None = None
        self._job_state: str | None = None

    def _after_init(self) -> None:
        checked = self.validate_params(rendered=False).checked
        self.poll_interval = float(checked["poll_interval"])
        self.callback_fallback_poll_interval = float(checked["callback_fallback_poll_interval"])
        self.max_wait = checked.get("max_wait")
        self.reattach_lookback = float(checked.get("reattach_lookback", 0.0))
        self.job_query_batch_size = checked.get("job_query_batch_size")

    def _values(self) -> dict[str, Any]:
        """Every described parameter's current value (templated or not): what ``build_svb_request`` checks."""
        return self.param_values()

    # -- hooks --------------------------------------------------------------------------------------------
    def _hook(self, region: str | None = None) -> CIHook:
        """The operator's (cached) hook, or one for another region (an earlier job's output region)."""
        if region is None or region == self.hook.region:
            return self.hook
        return cast("CIHook", make_hook(CI_HOOK, self.tencentcloud_conn_id, region))

    # -- execute ------------------------------------------------------------------------------------------
    def lineage_datasets(self) -> dict[str, list[tuple[str, str]]]:
        """The input video and the output video as (``cos://<bucket>``, key), from the rendered fields.

        Derived, not remembered from ``execute``: a deferred task completes in a new operator instance.
        """
        hook = self._hook()
        source = (f"cos://{hook.bucket_name(self.bucket)}", cos_key(self.input_object))
        output = (f"cos://{hook.bucket_name(self.output_bucket or self.bucket)}", cos_key(self.output_object))
        return {"inputs": [source], "outputs": [output]}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The input video -> the output video. None without the OpenLineage provider."""
        datasets = self.lineage_datasets()
        return openlineage_facets(datasets["inputs"], datasets["outputs"])

    def execute(self, context: Context) -> Any:
        request = build_svb_request(self._values())  # again, after rendering
        hook = self._hook()
        region = self.resolved_region()
        with_listener = self.use_callback_listener and self.deferrable and self.wait_for_completion
        from airflow_provider_tencent_ci.triggers import callback_listener  # not at DAG parse time

        if with_listener:
            # Before any request (the rerun lookup included): a callback CI cannot deliver is refused up front.
            check_callback_base_url(callback_listener.callback_base_url(), hook.config)
        bucket = hook.bucket_name(self.bucket)
        output_bucket = hook.bucket_name(self.output_bucket or self.bucket)
        output_region = self.output_region or region
        self._job_bucket = bucket
        ti = context["ti"]
        idem = idempotency_key(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))

        try:
            existing = self._find_existing_job(context, hook, bucket, idem, output_bucket, output_region)
        except TencentCloudError as err:
            raise RerunLookupError.from_error(err, bucket) from err
        if existing is not None and existing.get("State") == JobState.SUCCESS.value:
            self._job_id = str(existing["JobId"])
            self._persist_link(context, bucket, region)
            self.log.info(
                "CI job %s of this task already succeeded and its output exists: not resubmitting", self._job_id
            )
            return existing
        nonce: str | None = None
        if existing is not None:
            job = existing
            self._job_id = str(job["JobId"])
            self.log.info(
                "Reattaching to CI job %s (state %s) submitted by an earlier try", self._job_id, job.get("State")
            )
        else:
            request["Operation"]["UserData"] = compose_user_data(idem, self.user_data)
            request["Operation"]["Output"] = {
                "Region": output_region,
                "Bucket": output_bucket,
                "Object": self.output_object,
            }
            if with_listener:
                nonce = callback_listener.new_nonce()
                token = callback_listener.token_for_nonce(nonce)
                # The URL's token is a bearer secret: masked before the SDK logs the CreateJob body at INFO.
                self._mask_callback_secrets(hook, nonce, token)
                request["CallBack"] = callback_listener.callback_url(token)
                request.setdefault("CallBackFormat", self.callback_format or "JSON")
            job = hook.submit_job(bucket, request)
            self._job_id = str(job["JobId"])
            self._remember_job(context, self._job_id)
            self.log.info(
                "Submitted CI job %s (SegmentVideoBody, %s -> %s/%s)",
                self._job_id,
                self.input_object,
                output_bucket,
                self.output_object,
            )
        self._persist_link(context, bucket, region)
        if not self.wait_for_completion:
            return job
        if self.deferrable:
            self._defer(bucket, region, nonce)
        return self._wait_in_worker(hook, bucket, self._job_id)

    @staticmethod
    def _mask_callback_secrets(hook: CIHook, *secrets: str) -> None:
        """Register the callback nonce and token with Airflow's secret masker and the SDK loggers' redaction."""
        for secret in secrets:
            hook.mask_secret(secret)

    def _defer(self, bucket: str, region: str, nonce: str | None) -> None:
        from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger, CIJobTrigger, deadline_from

        assert self._job_id is not None
        common: dict[str, Any] = {
            "job_id": self._job_id,
            "bucket": bucket,
            "tencentcloud_conn_id": self.tencentcloud_conn_id,
            "region": region,
            "end_time": deadline_from(self.max_wait),
            "fail_on_pause": self.fail_on_pause,
            "cancel_on_kill": self.cancel_on_kill,
            "batch_size": self.job_query_batch_size,
        }
        trigger: CIJobTrigger | CIJobCallbackTrigger
        if nonce is not None:
            trigger = CIJobCallbackTrigger(
                callback_nonce=nonce, poll_interval=self.callback_fallback_poll_interval, **common
            )
        else:
            trigger = CIJobTrigger(poll_interval=self.poll_interval, **common)
        # The trigger yields its own timeout event at max_wait; Airflow's timeout is only a backstop.
        timeout = None if self.max_wait is None else timedelta(seconds=self.max_wait + 300)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if not event:
            raise AirflowException("CI job trigger returned no event")
        self._job_id = event.get("job_id") or self._job_id
        if event_outcome(event) is JobOutcome.SUCCESS:
            self.log.info("CI job %s succeeded", self._job_id)
            return event.get("job")
        raise event_error(event)

    def _wait_in_worker(self, hook: CIHook, bucket: str, job_id: str) -> dict[str, Any]:
        deadline = None if self.max_wait is None else time.monotonic() + self.max_wait
        last_state: str | None = None
        missing = 0
        while True:
            try:
                query = hook.get_jobs(bucket, [job_id])
            except TencentCloudError as err:
                if not err.retryable:
                    raise
                self.log.warning("Transient error polling CI job %s: %s", job_id, err)
                query = None
            if query is not None:
                job = next((j for j in query.jobs if j.get("JobId") == job_id), None)
                missing = missing + 1 if job is None else 0
                if job is not None and job.get("State") != last_state:
                    self.log.info("CI job %s: state %s -> %s", job_id, last_state or "(unknown)", job.get("State"))
                    last_state = self._job_state = job.get("State")
                outcome = job_outcome(job, fail_on_pause=self.fail_on_pause, missing=missing)
                if outcome is JobOutcome.SUCCESS:
                    return job  # type: ignore[return-value]  # SUCCESS implies a JobsDetail
                if outcome.done:
                    raise job_error(outcome, job_id, job)
            if deadline is not None and time.monotonic() >= deadline:
                message = f"CI job {job_id} did not finish within max_wait={self.max_wait}s (last state {last_state})"
                raise task_error(JobOutcome.TIMEOUT, job_id, message=message)
            time.sleep(
                self.poll_interval
                if deadline is None
                else max(0.0, min(self.poll_interval, deadline - time.monotonic()))
            )

    # -- rerun safety -------------------------------------------------------------------------------------
    def _remember_job(self, context: Context, job_id: str) -> None:
        store: Any = context.get("task_state_store")  # type: ignore[call-overload]  # Airflow >= 3.3
        if store is None:
            return
        try:
            store.set(TASK_STATE_JOB_KEY, job_id)
        except Exception as err:  # the idempotency marker still protects the rerun
            self.log.warning("Could not store the job id in task_state_store: %s", err)

    def _find_existing_job(
        self, context: Context, hook: CIHook, bucket: str, idem: str, output_bucket: str, output_region: str
    ) -> dict[str, Any] | None:
        candidates: dict[str, dict[str, Any]] = {}
        store: Any = context.get("task_state_store")  # type: ignore[call-overload]  # Airflow >= 3.3
        if store is not None:
            try:
                stored = store.get(TASK_STATE_JOB_KEY)
            except Exception as err:
                self.log.warning("Could not read task_state_store: %s", err)
                stored = None
            if stored:
                for job in hook.get_jobs(bucket, [str(stored)]).jobs:
                    candidates[str(job.get("JobId"))] = job
        if self.reattach_lookback > 0:
            start = datetime.now(timezone.utc) - timedelta(seconds=self.reattach_lookback)
            next_token = ""
            for _ in range(REATTACH_MAX_PAGES):
                page = hook.list_jobs(
                    bucket,
                    SEGMENT_VIDEO_BODY_TAG,
                    start_creation_time=start,
                    size=JOB_LIST_MAX_SIZE,
                    next_token=next_token,
                    order_by_time="Desc",
                    queue_type=AI_QUEUE_TYPE,
                    input_object=self._input_filter(),
                )
                for job in page.jobs:
                    if job_idempotency_key(job) == idem:
                        candidates[str(job.get("JobId"))] = job
                next_token = page.next_token
                if not next_token:
                    break
            else:
                self.log.warning(
                    "Looked at %d pages of recent jobs for an earlier job of this task; stopping", REATTACH_MAX_PAGES
                )
        if not candidates:
            return None
        jobs = sorted(candidates.values(), key=lambda j: str(j.get("CreationTime", "")), reverse=True)
        for job in jobs:
            if job.get("State") in JOB_ACTIVE_STATES:
                return job
        for job in jobs:
            if job.get("State") == JobState.SUCCESS.value:
                if self._output_exists(job, output_bucket, output_region):
                    return job
                self.log.info("Earlier CI job %s succeeded but its output is gone: submitting anew", job.get("JobId"))
        failed = [j.get("JobId") for j in jobs if j.get("State") in JOB_FAILED_STATES]
        if failed:
            self.log.info("Earlier CI job(s) %s of this task ended Failed/Cancel: submitting anew", failed)
        return None

    def _input_filter(self) -> str | None:
        """The list query's ``inputObject``: the key submitted as Input.Object.

        A key given with a leading '/' is sent unfiltered: CI documents an exact match but not whether it compares
        with the key as given or as stored (COS keys drop the '/'; the emulator stores it so), and a filter that
        missed the earlier job would pay twice.
        """
        return None if self.input_object.startswith("/") else self.input_object

    def _output_exists(self, job: Mapping[str, Any], output_bucket: str, output_region: str) -> bool:
        operation = job.get("Operation") if isinstance(job.get("Operation"), Mapping) else {}
        output = operation.get("Output") if isinstance(operation, Mapping) else None
        output = output if isinstance(output, Mapping) else {}
        key = output.get("Object") or self.output_object
        # An error here is a failed lookup (RerunLookupError), never "the output is gone": that would pay twice.
        hook = self._hook(region=str(output.get("Region") or output_region))
        return hook.head_object(str(output.get("Bucket") or output_bucket), str(key)) is not None

    def _persist_link(self, context: Context, bucket: str, region: str) -> None:
        try:
            view = self._hook().config.console_base_url
            CIJobLink.persist(context, bucket=bucket, region=region, job_id=self._job_id, console_base_url=view)
        except Exception as err:  # a link must never fail the task
            self.log.debug("Could not persist the CI job link: %s", err)

    # -- kill ---------------------------------------------------------------------------------------------
    def on_kill(self) -> None:
        """Cancel the job (best effort) when the running task is killed; CI refuses once a job has started."""
        if not self.cancel_on_kill or not self._job_id or not self._job_bucket:
            return
        try:
            self._hook().cancel_job(self._job_bucket, self._job_id)
            self.log.info("Asked CI to cancel job %s", self._job_id)
        except TencentCloudError as err:
            self.log.warning("CI did not cancel job %s (it may have started already): %s", self._job_id, err)
