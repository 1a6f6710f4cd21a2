"""SegmentVideoBodyJobSensor: wait for a CI job submitted elsewhere (poke, reschedule or deferrable).

Success only on State=Success (the JobsDetail is the XCom). What every state means, and which exception a task
raises, is decided in ``jobs/outcome.py`` for the operator, this sensor and the triggers alike: Failed/Cancel fail
with CI's code and message (``CIJobFailedError``), Pause keeps waiting unless ``fail_on_pause=True`` (then
``CIJobFailedError`` with code ``Pause``), each skips instead with ``soft_fail=True``. Throttling and 5xx are
transient: the poke returns False and the sensor tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.sensor import PokeReturnValue

from airflow_provider_tencent_ci.common.config import default_deferrable
from airflow_provider_tencent_ci.constants import DEFAULT_CONN_ID
from airflow_provider_tencent_ci.exceptions import TencentCloudError
from airflow_provider_tencent_ci.jobs.outcome import (
    MISSING_TOLERANCE,
    JobOutcome,
    event_error,
    event_outcome,
    job_error,
    job_outcome,
)
from airflow_provider_tencent_ci.links.cos import CIJobLink
from airflow_provider_tencent_ci.operators.base import CI_HOOK, TencentCloudBaseSensor, tencentcloud_template_fields
from airflow_provider_tencent_ci.params.video import SENSOR_SPEC
from airflow_provider_tencent_ci.validation import check_non_empty_str

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_tencent_ci.hooks.ci import CIHook

try:
    from airflow.sdk.exceptions import (  # type: ignore[attr-defined]  # Airflow >= 3.2
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # pragma: no cover - older layouts
    from airflow.exceptions import AirflowSensorTimeout, AirflowSkipException  # type: ignore[no-redef]


class SegmentVideoBodyJobSensor(TencentCloudBaseSensor["CIHook"]):
    """Wait for a SegmentVideoBody (or any CI ``/jobs``) job to finish.

    :param job_id: the CI JobId (templated).
    :param bucket: the bucket the job belongs to (templated).
    :param tencentcloud_conn_id: connection id.
    :param region: region (None: the connection's).
    :param fail_on_pause: fail when the job is in Pause (default False: keep waiting).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``); ``timeout`` becomes the
        trigger's max wait and ``poke_interval`` its poll interval.
    """

    hook_class = CI_HOOK
    params_spec = SENSOR_SPEC
    template_fields: Sequence[str] = tencentcloud_template_fields(*SENSOR_SPEC.template_fields)
    operator_extra_links = (CIJobLink(),)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        job_id: str,
        bucket: str,
        tencentcloud_conn_id: str = DEFAULT_CONN_ID,
        region: str | None = None,
        fail_on_pause: bool = False,
        deferrable: bool = default_deferrable(),
        **kwargs: Any,
    ) -> None:
        super().__init__(tencentcloud_conn_id=tencentcloud_conn_id, region=region, **kwargs)
        self.job_id = job_id
        self.bucket = bucket
        self.fail_on_pause = fail_on_pause
        self.deferrable = deferrable

    def _hook(self) -> CIHook:
        """The sensor's hook, built once per task (not once per poke)."""
        return self.hook

    def _fail(self, error: Exception) -> None:
        if self.soft_fail:
            raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
        raise error

    def poke(self, context: Context) -> bool | PokeReturnValue:
        check_non_empty_str("job_id", self.job_id)
        check_non_empty_str("bucket", self.bucket)
        hook = self._hook()
        try:
            query = hook.get_jobs(self.bucket, [self.job_id])
        except TencentCloudError as err:
            if err.retryable:
                self.log.warning("Transient error polling CI job %s: %s", self.job_id, err)
                return False
            raise
        job = next((j for j in query.jobs if j.get("JobId") == self.job_id), None)
        # Each poke is judged on its own (reschedule mode keeps no state between pokes), and the job was submitted
        # elsewhere, earlier: a job CI does not know is final at once.
        outcome = job_outcome(job, fail_on_pause=self.fail_on_pause, missing=MISSING_TOLERANCE)
        if job is not None:
            self.log.info("CI job %s is %s", self.job_id, job.get("State"))
        if outcome is JobOutcome.SUCCESS:
            self._persist_link(context, hook)
            return PokeReturnValue(is_done=True, xcom_value=job)
        if outcome.done:
            self._fail(job_error(outcome, self.job_id, job))
        return False

    def execute(self, context: Context) -> Any:
        # The job's link from the start: Airflow resolves every extra link when the try ends, deferral and
        # reschedule included, and a link with nothing persisted logs "XCom not found" as an error.
        self._persist_link(context, self._hook())
        if not self.deferrable:
            return super().execute(context)
        # Check once in the worker: a finished job needs no trigger.
        result = self.poke(context)
        if result:
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        from airflow_provider_tencent_ci.triggers.ci_job import CIJobTrigger, deadline_from

        hook = self._hook()
        self.defer(
            trigger=CIJobTrigger(
                job_id=self.job_id,
                bucket=self.bucket,
                tencentcloud_conn_id=self.tencentcloud_conn_id,
                region=self.region or hook.region,
                poll_interval=self.poke_interval,
                end_time=deadline_from(self.timeout),
                fail_on_pause=self.fail_on_pause,
                cancel_on_kill=False,  # a sensor watches a job it does not own
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        event = event or {}
        if event_outcome(event) is JobOutcome.SUCCESS:
            self._persist_link(context, self._hook())
            return event.get("job")
        # AirflowSensorTimeout: BaseSensorOperator.resume_execution turns it into a skip with soft_fail.
        raise event_error({"job_id": self.job_id, **event}, timeout_error=AirflowSensorTimeout)

    def _persist_link(self, context: Context, hook: CIHook) -> None:
        # A link must never fail the task (hook.region/bucket_name may need the connection).
        try:
            bucket, view = hook.bucket_name(self.bucket), hook.config.console_base_url
            CIJobLink.persist(context, bucket=bucket, region=hook.region, job_id=self.job_id, console_base_url=view)
        except Exception as err:
            self.log.debug("Could not persist the CI job link: %s", err)
