"""Live smoke: settle, against the real Tencent Cloud, what the documents leave open (issue 12, item 8).

Opt-in and billed (one tiny SegmentVideoBody job, three AIPortraitMatting calls). Credentials, bucket and region
are read exactly as in tests/dags/test_live_cloud.py (TENCENTCLOUD_SECRET_ID/KEY or TENCENTCLOUD_LIVE_SECRET_ID/KEY,
TENCENTCLOUD_TEST_BUCKET, TENCENTCLOUD_TEST_REGION); without them every test here is skipped and no network call
is made. Each test prints what it saw (past pytest's capture) so the output can be pasted into an issue; it
asserts only that each answer is well formed, never which answer the cloud gives.

1. ``GET /jobs`` (tag SegmentVideoBody) with and without ``queueType=AIProcess``: the 2025 list page (intl
   1045/73114, cn 460/84766) adds queueType with no documented default; older pages require queueId.
2. The Content-Type and framing of a ``CallBackFormat=JSON`` job callback (cn 460/84954 says the body "is returned
   as application/xml" and shows JSON samples). Needs TENCENT_CI_LIVE_CALLBACK_BASE_URL (public URL forwarding to
   127.0.0.1:$TENCENT_CI_LIVE_CALLBACK_PORT, where this test listens) and TENCENT_CI_LIVE_VIDEO_KEY (a short video
   already in the bucket); skipped without them. TENCENT_CI_LIVE_CALLBACK_WAIT bounds the wait (seconds, 600).
3. How many times ``detect-url`` is percent-encoded: the AIPortraitMatting seed's example is encoded three times;
   cos-python-sdk-v5 (``ci_recognize_logo_process``) and cos-go-sdk-v5 (go-querystring) encode once.

Objects are written under ``airflow-provider-live/<uuid>/`` (the shared ``live_conn`` fixture) and deleted.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.dags import test_live_cloud as cloud
from tests.live._capture import CapturedRequest, Receiver
from tests.live._detect_url import pre_encode
from tests.live._report import body_shape, emit, header_lines, redact

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.ci import CIHook
    from airflow_provider_tencent_ci.hooks.ci_jobs import CIJobRequest

pytestmark = cloud.pytestmark

CALLBACK_BASE_URL = os.environ.get("TENCENT_CI_LIVE_CALLBACK_BASE_URL", "")
CALLBACK_PORT = os.environ.get("TENCENT_CI_LIVE_CALLBACK_PORT", "")
CALLBACK_WAIT_SETTING = os.environ.get("TENCENT_CI_LIVE_CALLBACK_WAIT", "")
CALLBACK_WAIT = float(CALLBACK_WAIT_SETTING) if CALLBACK_WAIT_SETTING.isdigit() else 600.0
VIDEO_KEY = os.environ.get("TENCENT_CI_LIVE_VIDEO_KEY", "")
# Optional: a real portrait photo to upload for the detect-url check (default: the demo's drawn portrait).
PORTRAIT_FILE = os.environ.get("TENCENT_CI_LIVE_PORTRAIT_FILE", "")
POLL_EVERY = 30.0
# After the job reached a final state, how long a callback may still take to arrive.
CALLBACK_GRACE = 120.0


def _hook() -> tuple[CIHook, str]:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook = CIHook()
    return hook, hook.bucket_name(str(cloud.BUCKET))


# ---- 1. the job list -------------------------------------------------------------------------------------------
@dataclass
class ListAnswer:
    status: int
    jobs: int | None = None  # JobsDetail entries, when the answer is a list
    more: bool = False  # NextToken set: more pages exist
    code: str | None = None
    message: str | None = None
    request_id: str | None = None

    @property
    def well_formed_list(self) -> bool:
        return self.status == 200 and self.jobs is not None

    @property
    def documented_error(self) -> bool:
        """An HTTP error status with CI's ``<Error>`` document (Code, Message), as ``reply_error`` reads it."""
        return self.status >= 400 and bool(self.code)

    def describe(self) -> str:
        if self.jobs is not None:
            return f"HTTP {self.status}, {self.jobs} job(s) listed{', more pages' if self.more else ''}"
        return f"HTTP {self.status}, code={self.code}, message={self.message!r}, request_id={self.request_id}"


def _list_once(hook: CIHook, bucket: str, request: CIJobRequest) -> ListAnswer:
    """Send a job-list request signed by the hook's own builder, keeping the HTTP status whatever it is."""
    from airflow_provider_tencent_ci.common.xml import as_list
    from airflow_provider_tencent_ci.exceptions import TencentCloudError
    from airflow_provider_tencent_ci.hooks.ci_jobs import read_reply
    from airflow_provider_tencent_ci.hooks.sessions import http_session

    creds = hook.get_credentials()
    url, headers = request.signed(hook.get_conn(), bucket, creds.token)
    cfg = hook.config
    with http_session().request(
        request.method, url, headers=headers, proxies=cfg.proxy_map(), timeout=cfg.timeout, allow_redirects=False
    ) as response:
        status, body, reply_headers = response.status_code, response.content, response.headers
    try:
        data = read_reply(request.operation, status, body, reply_headers)
    except TencentCloudError as err:
        return ListAnswer(status, code=err.code, message=redact(err.message, bucket), request_id=err.request_id)
    detail = as_list(data.get("JobsDetail"))
    if not all(isinstance(job, Mapping) for job in detail):
        return ListAnswer(status, message=f"JobsDetail entries are not objects: {body[:200]!r}")
    return ListAnswer(status, jobs=len(detail), more=bool(data.get("NextToken")))


def test_job_list_with_and_without_queue_type(live_conn: str, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_provider_tencent_ci.constants import JOB_LIST_MAX_SIZE, SEGMENT_VIDEO_BODY_TAG
    from airflow_provider_tencent_ci.hooks.ci_jobs import AI_QUEUE_TYPE, list_jobs_request

    hook, bucket = _hook()
    with_type = list_jobs_request(SEGMENT_VIDEO_BODY_TAG, size=JOB_LIST_MAX_SIZE, queue_type=AI_QUEUE_TYPE)
    assert with_type.params.get("queueType") == AI_QUEUE_TYPE
    without_type = replace(with_type, params={k: v for k, v in with_type.params.items() if k != "queueType"})
    answers = {
        f"queueType={AI_QUEUE_TYPE} (what the hooks send)": _list_once(hook, bucket, with_type),
        "no queueType, no queueId": _list_once(hook, bucket, without_type),
    }
    emit(
        capsys,
        f"GET /jobs?tag={SEGMENT_VIDEO_BODY_TAG}&size={JOB_LIST_MAX_SIZE}&states=All (region {hook.region})",
        [f"{label}: {answer.describe()}" for label, answer in answers.items()],
    )
    for label, answer in answers.items():
        assert answer.well_formed_list or answer.documented_error, f"{label}: neither a job list nor a CI error"


# ---- 2. the JSON job callback ----------------------------------------------------------------------------------
def _wait_for_callback(
    rx: Receiver, hook: CIHook, bucket: str, job_id: str, token: str
) -> tuple[CapturedRequest | None, list[CapturedRequest]]:
    """The callback carrying ``token`` (None after the bounded wait) and the other requests that arrived.

    The job is polled meanwhile: once it is final, a callback gets ``CALLBACK_GRACE`` more seconds to arrive.
    """
    from airflow_provider_tencent_ci.constants import JOB_TERMINAL_STATES

    others: list[CapturedRequest] = []
    deadline = time.monotonic() + CALLBACK_WAIT
    next_poll = time.monotonic() + POLL_EVERY
    final = False
    while time.monotonic() < deadline:
        seen = rx.next_request(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        if seen is not None and token in seen.target:
            return seen, others
        if seen is not None:
            others.append(seen)
        if not final and time.monotonic() >= next_poll:
            next_poll = time.monotonic() + POLL_EVERY
            jobs = hook.get_jobs(bucket, job_id).jobs
            if jobs and jobs[0].get("State") in JOB_TERMINAL_STATES:
                final = True
                deadline = min(deadline, time.monotonic() + CALLBACK_GRACE)
    return None, others


def _check_callback_settings() -> int:
    """The callback port; a malformed setting fails the test before anything is paid for."""
    if CALLBACK_WAIT_SETTING and not CALLBACK_WAIT_SETTING.isdigit():
        pytest.fail(f"TENCENT_CI_LIVE_CALLBACK_WAIT={CALLBACK_WAIT_SETTING!r}: must be whole seconds")
    if not CALLBACK_PORT.isdigit() or not 0 < int(CALLBACK_PORT) < 65536:
        pytest.fail(f"TENCENT_CI_LIVE_CALLBACK_PORT={CALLBACK_PORT!r}: must be a TCP port number (1..65535)")
    return int(CALLBACK_PORT)


def _finish_job(hook: CIHook, bucket: str, job_id: str, output: str) -> tuple[str, list[str]]:
    """The job's state now; cancel it if it has not started (nothing more is paid), delete its output if present."""
    from airflow_provider_tencent_ci.constants import JOB_ACTIVE_STATES, JobState
    from airflow_provider_tencent_ci.exceptions import TencentCloudError

    jobs = hook.get_jobs(bucket, job_id).jobs
    state = str(jobs[0].get("State")) if jobs else "unknown (not found)"
    notes = []
    if state == JobState.SUBMITTED.value:  # only a job that has not started can be cancelled (cn 1246/109264)
        try:
            hook.cancel_job(bucket, job_id)
            notes.append(f"cancelled job {job_id} (state {state})")
        except TencentCloudError as err:
            notes.append(f"could not cancel job {job_id} (state {state}): code={err.code}")
    elif state in JOB_ACTIVE_STATES:
        notes.append(f"job {job_id} is still {state}: delete {output} from the bucket once it finishes")
    if hook.object_exists(bucket, output):
        hook.delete_object(bucket, output)
        notes.append("deleted the job's output object")
    return state, notes


@pytest.mark.timeout(CALLBACK_WAIT + 300)  # the wait is bounded by CALLBACK_WAIT; the suite's 300 s would cut it
def test_json_callback_content_type_and_framing(live_conn: str, capsys: pytest.CaptureFixture[str]) -> None:
    if not CALLBACK_BASE_URL or not CALLBACK_PORT:
        pytest.skip(
            "needs TENCENT_CI_LIVE_CALLBACK_BASE_URL (a public URL forwarding to 127.0.0.1) and "
            "TENCENT_CI_LIVE_CALLBACK_PORT (the local port it forwards to)"
        )
    if not VIDEO_KEY:
        pytest.skip("needs TENCENT_CI_LIVE_VIDEO_KEY: a short video already in TENCENTCLOUD_TEST_BUCKET")
    from airflow_provider_tencent_ci.operators.segment_video_body import build_svb_request

    port = _check_callback_settings()
    hook, bucket = _hook()
    assert hook.object_exists(bucket, VIDEO_KEY), f"TENCENT_CI_LIVE_VIDEO_KEY={VIDEO_KEY!r} is not in the bucket"
    token = uuid.uuid4().hex
    callback_url = f"{CALLBACK_BASE_URL.rstrip('/')}/tencent-ci-live-smoke/{token}"
    output = f"{live_conn}/segment-video-body/out.mp4"
    request = build_svb_request(
        {
            "bucket": bucket,
            "input_object": VIDEO_KEY,
            "output_object": output,
            "callback_url": callback_url,
            "callback_format": "JSON",
        }
    )
    request["Operation"]["Output"] = {"Region": hook.region, "Bucket": bucket, "Object": output}
    callback: CapturedRequest | None = None
    others: list[CapturedRequest] = []
    with Receiver(port) as rx:
        job_id = str(hook.submit_job(bucket, request)["JobId"])
        try:
            callback, others = _wait_for_callback(rx, hook, bucket, job_id, token)
        finally:
            state, notes = _finish_job(hook, bucket, job_id, output)

    lines = [f"job {job_id}: state {state} after the wait (at most {CALLBACK_WAIT:.0f} s)", *notes]
    if callback is None:
        lines.append("no callback arrived")
    else:
        fmt, skeleton = body_shape(callback.body)
        public_host = urlsplit(CALLBACK_BASE_URL).hostname or ""
        lines += [
            f"request line: {redact(callback.request_line.replace(token, '<token>'), public_host)}",
            f"framing: {callback.framing} ({callback.data_events} body piece(s), {len(callback.body)} bytes,"
            f" {'complete' if callback.complete else 'INCOMPLETE'})",
            f"Content-Type: {callback.header('Content-Type')}",
            f"body read as: {fmt}",
            "headers as received:",
            *(f"  {line}" for line in header_lines(callback.headers)),
            f"body shape: {json.dumps(skeleton)}",
            "note: an HTTP-level tunnel may re-frame the body; a TCP forward (ssh -R, ngrok tcp) shows CI's own",
        ]
    lines += [f"other request: {other.method} {other.framing}" for other in others]
    emit(capsys, "CallBackFormat=JSON job callback", lines)
    assert callback is not None, f"no callback for job {job_id} within {CALLBACK_WAIT:.0f} s (last state {state})"
    assert callback.complete, "the callback connection ended before the end of its body"
    assert body_shape(callback.body)[0] in ("JSON", "XML"), "the callback body is neither JSON nor XML"


# ---- 3. detect-url encoding ------------------------------------------------------------------------------------
@dataclass
class MattingAnswer:
    status: str
    content_type: str | None = None
    image: str | None = None  # "PNG 240x320 RGBA" when the body is an image PIL can read
    code: str | None = None
    message: str | None = None

    @property
    def is_image(self) -> bool:
        return self.image is not None

    @property
    def documented_error(self) -> bool:
        return self.status.isdigit() and int(self.status) >= 400 and bool(self.code)

    def describe(self) -> str:
        if self.image:
            return f"HTTP {self.status} {self.content_type}: image {self.image}"
        return f"HTTP {self.status} {self.content_type or ''} code={self.code} message={self.message!r}"


def _matting(hook: CIHook, bucket: str, key: str, detect_url: str | None, *secrets: str) -> MattingAnswer:
    from PIL import Image, UnidentifiedImageError

    from airflow_provider_tencent_ci.exceptions import TencentCloudError

    try:
        with hook.ci_process(bucket, key, "AIPortraitMatting", detect_url=detect_url) as result:
            body, content_type = result.read(), result.content_type
    except TencentCloudError as err:
        status = str(err.status_code) if err.status_code is not None else "?"
        return MattingAnswer(status, code=err.code, message=redact(err.message, bucket, *secrets))
    # The hook raises for HTTP >= 400, so this answer was a 2xx (the SDK does not expose which).
    try:
        with Image.open(io.BytesIO(body)) as img:
            return MattingAnswer("2xx", content_type, image=f"{img.format} {img.width}x{img.height} {img.mode}")
    except UnidentifiedImageError:
        return MattingAnswer("2xx", content_type, message=redact(body[:200].decode("utf-8", "replace"), *secrets))


def _portrait() -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of the image to upload."""
    if PORTRAIT_FILE:
        path = Path(PORTRAIT_FILE)
        from airflow_provider_tencent_ci.hooks.ci_image import image_content_type

        data = path.read_bytes()
        return path.name, data, image_content_type(path.name, data[:16])
    from demo import sample_data

    image = sample_data.portraits(1)[0]
    return image.name, image.data, image.content_type


def test_detect_url_encoding(live_conn: str, capsys: pytest.CaptureFixture[str]) -> None:
    hook, bucket = _hook()
    name, data, content_type = _portrait()
    key = f"{live_conn}/detect-url/{name}"
    hook.put_object(bucket, key, data, content_type=content_type)
    try:
        # A presigned GET URL: the bucket may be private; its query (&, =, %) shows any extra decoding at once.
        url = hook.get_conn().get_presigned_download_url(Bucket=bucket, Key=key, Expired=900)
        answers: dict[str, Any] = {
            "control: the object itself, no detect-url": _matting(hook, bucket, key, None),
            "detect-url encoded once (both SDKs)": _matting(hook, bucket, "", pre_encode(url, 0), url),
            "detect-url encoded three times (seed example)": _matting(hook, bucket, "", pre_encode(url, 2), url),
        }
    finally:
        hook.delete_object(bucket, key)
    emit(
        capsys,
        f"AIPortraitMatting download mode, detect-url = presigned URL of an uploaded {content_type}",
        [f"{label}: {answer.describe()}" for label, answer in answers.items()],
    )
    for label, answer in answers.items():
        assert answer.is_image or answer.documented_error, f"{label}: neither an image nor a CI error"
