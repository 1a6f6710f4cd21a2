"""CI SegmentVideoBody jobs: submit, query, list, cancel, a timed state machine, and completion callbacks.

States follow the job API: Submitted -> Running -> Success | Failed, plus Pause (a paused queue holds a job that
has not started) and Cancel (only jobs that have not started can be cancelled). Durations are configurable
(``set_timing``); tests drive outcomes with ``force_outcome``/``pause``/``resume``.

On Success an output object exists at Operation.Output: for an image input it is the matted result of the
requested Mode (Mask: grayscale alpha, Foreground: subject over the Background colour, Combination: subject over
the BackgroundLogoUrl image); for anything else (a video) it is a copy of the input bytes.

When a job ends, CI POSTs a callback to the job's CallBack URL (XML by default, JSON with CallBackFormat=JSON);
``CallBack=no`` or none sends nothing, CallBackType=TDMQ is recorded but not sent. Each callback passes through
``state.faults.callback_plan()`` (drop, duplicate, delay). Every attempt is recorded in ``callbacks_sent``.

Threading: handlers and timers run on the server's event loop. Control methods may be called from any thread;
they change the records under a lock and hand task work to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import os
import random
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import httpx
from defusedxml import ElementTree as SafeET

from . import imaging
from .core import CosError, EmuRequest, EmuResponse, cos_bucket_of_host

TAG = "SegmentVideoBody"
SUBMITTED, RUNNING, SUCCESS, FAILED, PAUSE, CANCEL = "Submitted", "Running", "Success", "Failed", "Pause", "Cancel"
ALL_STATES = (SUBMITTED, RUNNING, SUCCESS, FAILED, PAUSE, CANCEL)
TERMINAL = frozenset({SUCCESS, FAILED, CANCEL})
MODES = ("Mask", "Foreground", "Combination")
SEGMENT_TYPES = ("HumanSeg", "GreenScreenSeg", "SolidColorSeg")
COLOUR_PARAMS = (
    "BackgroundRed",
    "BackgroundGreen",
    "BackgroundBlue",
    "BinaryThreshold",
    "RemoveRed",
    "RemoveGreen",
    "RemoveBlue",
)
SVB_ORDER = ("Mode", "SegmentType", *COLOUR_PARAMS[:3], "BackgroundLogoUrl", *COLOUR_PARAMS[3:])
USER_DATA_MAX = 1024
JOB_LEVELS = ("0", "1", "2")
CALLBACK_FORMATS = ("JSON", "XML")
CALLBACK_TYPES = ("Url", "TDMQ")
MQ_MODES = ("Queue", "Topic")
LIST_MAX_SIZE = 100
DEFAULT_QUEUE_SECONDS = 0.2
DEFAULT_RUN_SECONDS = 0.5
CALLBACK_ATTEMPTS = 3
CALLBACK_BACKOFF = (0.1, 0.3)
CALLBACK_TIMEOUT = 5.0
CST = timezone(timedelta(hours=8))  # CI reports job times in Beijing time: 2022-06-27T14:44:10+0800
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def _bad(message: str) -> CosError:
    return CosError(400, "InvalidArgument", message)


def format_time(dt: datetime) -> str:
    return dt.astimezone(CST).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime | None:
    raw = value.strip().replace(" ", "+")  # an unencoded "+" in a query string decodes to a space
    for fmt in (TIME_FORMAT, "%Y-%m-%dT%H:%M:%S"):
        try:
            dt = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        return dt if dt.tzinfo else dt.replace(tzinfo=CST)
    return None


# -- XML ----------------------------------------------------------------------------------------------------
def _render(name: str, value: Any, out: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _render(name, item, out)
    elif isinstance(value, dict):
        out.append(f"<{name}>")
        for k, v in value.items():
            _render(k, v, out)
        out.append(f"</{name}>")
    elif value is None or value == "":
        out.append(f"<{name}/>")
    else:
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def to_xml(root: str, value: dict[str, Any]) -> bytes:
    out: list[str] = []
    _render(root, value, out)
    return "".join(out).encode("utf-8")


def _child(el: Element | None, name: str) -> Element | None:
    return None if el is None else el.find(name)


def _text(el: Element | None, name: str) -> str | None:
    c = _child(el, name)
    if c is None:
        return None
    return (c.text or "").strip()


# -- request validation -------------------------------------------------------------------------------------
def _check_int(name: str, value: str, lo: int, hi: int) -> str:
    if not re.fullmatch(r"\d{1,6}", value) or not lo <= int(value) <= hi:
        raise _bad(f"{name}={value!r} is invalid: must be an integer within [{lo}, {hi}]")
    return str(int(value))


def _logo_source(state: Any, bucket: str, value: str) -> tuple[str, str]:
    """BackgroundLogoUrl must name an object in the source bucket: a URL of that bucket or a plain key."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):
        parts = urlsplit(value)
        url_bucket = cos_bucket_of_host(parts.hostname or "")
        if parts.scheme.lower() not in ("http", "https") or not url_bucket:
            raise _bad(f"BackgroundLogoUrl={value!r} is invalid: must be a COS URL in the source bucket {bucket}")
        if url_bucket != bucket:
            raise _bad(
                f"BackgroundLogoUrl={value!r} is invalid: the background file must be in the same bucket as the "
                f"source ({bucket})"
            )
        key = unquote(parts.path.lstrip("/"))
    else:
        key = value.lstrip("/")
    if not key or state.store.get(bucket, key) is None:
        raise _bad(f"BackgroundLogoUrl={value!r}: the background file does not exist in bucket {bucket}")
    return bucket, key


def parse_submit(state: Any, req: EmuRequest, bucket: str) -> dict[str, Any]:
    """Validate a ``<Request>`` and return the new job's (unsaved) fields."""
    if not req.body.strip():
        raise CosError(400, "MalformedXML", "the request body is empty")
    try:
        root = SafeET.fromstring(req.body)
    except Exception as exc:  # defusedxml raises ParseError or its own DefusedXmlException subclasses
        raise CosError(400, "MalformedXML", f"the request body is not well-formed XML: {exc}") from None
    if root.tag != "Request":
        raise CosError(400, "MalformedXML", f"the root element must be <Request>, got <{root.tag}>")
    tag = _text(root, "Tag")
    if tag != TAG:
        raise _bad(f"Tag={tag!r} is invalid: must be {TAG}")
    inp = _child(root, "Input")
    obj = _text(inp, "Object")
    if not obj:
        raise _bad("Input.Object is required")
    obj = obj.lstrip("/")
    if state.store.get(bucket, obj) is None:
        raise _bad(f"Input.Object={obj!r} does not exist in bucket {bucket}")
    op = _child(root, "Operation")
    if op is None:
        raise _bad("Operation is required")
    svb_el = _child(op, "SegmentVideoBody")
    svb: dict[str, str] = {}
    if svb_el is not None:
        for name in SVB_ORDER:
            val = _text(svb_el, name)
            if val is None or (val == "" and name != "BackgroundLogoUrl"):
                continue
            svb[name] = val
    mode = svb.get("Mode", "Mask")
    if mode not in MODES:
        raise _bad(f"SegmentVideoBody.Mode={mode!r} is invalid: must be one of {', '.join(MODES)}")
    seg_type = svb.get("SegmentType", "HumanSeg")
    if seg_type not in SEGMENT_TYPES:
        raise _bad(f"SegmentVideoBody.SegmentType={seg_type!r} is invalid: must be one of {', '.join(SEGMENT_TYPES)}")
    for name in COLOUR_PARAMS:
        if name in svb:
            svb[name] = _check_int(f"SegmentVideoBody.{name}", svb[name], 0, 255)
    logo = svb.get("BackgroundLogoUrl")
    if mode == "Combination" and not logo:
        raise _bad("SegmentVideoBody.BackgroundLogoUrl is required when Mode is Combination")
    if logo:
        _logo_source(state, bucket, logo)
    if not svb:
        svb = {"Mode": "Mask"}
    out_el = _child(op, "Output")
    if out_el is None:
        raise _bad("Operation.Output is required")
    output: dict[str, str] = {}
    for name in ("Region", "Bucket", "Object"):
        val = _text(out_el, name)
        if not val:
            raise _bad(f"Operation.Output.{name} is required")
        output[name] = val
    if output["Object"].endswith("/"):
        raise _bad(f"Operation.Output.Object={output['Object']!r} is invalid: must not end with '/'")
    if not state.store.has_bucket(output["Bucket"]):
        raise _bad(f"Operation.Output.Bucket={output['Bucket']!r} does not exist")
    user_data = _text(op, "UserData")
    if user_data is not None:
        if len(user_data) > USER_DATA_MAX:
            raise _bad(f"Operation.UserData is {len(user_data)} characters; at most {USER_DATA_MAX} are allowed")
        if any(not 32 <= ord(ch) <= 126 for ch in user_data):
            raise _bad("Operation.UserData must be printable ASCII")
    level = _text(op, "JobLevel") or "0"
    if level not in JOB_LEVELS:
        raise _bad(f"Operation.JobLevel={level!r} is invalid: must be one of 0, 1, 2")
    fmt = _text(root, "CallBackFormat") or "XML"
    if fmt not in CALLBACK_FORMATS:
        raise _bad(f"CallBackFormat={fmt!r} is invalid: must be JSON or XML")
    cb_type = _text(root, "CallBackType") or "Url"
    if cb_type not in CALLBACK_TYPES:
        raise _bad(f"CallBackType={cb_type!r} is invalid: must be Url or TDMQ")
    mq: dict[str, str] | None = None
    if cb_type == "TDMQ":
        mq_el = _child(root, "CallBackMqConfig")
        if mq_el is None:
            raise _bad("CallBackMqConfig is required when CallBackType is TDMQ")
        mq = {}
        for name in ("MqRegion", "MqMode", "MqName"):
            val = _text(mq_el, name)
            if not val:
                raise _bad(f"CallBackMqConfig.{name} is required when CallBackType is TDMQ")
            mq[name] = val
        if mq["MqMode"] not in MQ_MODES:
            raise _bad(f"CallBackMqConfig.MqMode={mq['MqMode']!r} is invalid: must be Queue or Topic")
    callback = _text(root, "CallBack") or None
    if callback is not None and callback != "no" and cb_type == "Url":
        parts = urlsplit(callback)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _bad(f"CallBack={callback!r} is invalid: must be an http(s) URL or 'no'")
    operation: dict[str, Any] = {"SegmentVideoBody": svb}
    if user_data is not None:
        operation["UserData"] = user_data
    operation["JobLevel"] = level
    operation["Output"] = output
    return {
        "Tag": TAG,
        "Input": {"BucketId": bucket, "Object": obj, "Region": req.region or state.default_region},
        "Operation": operation,
        "callback": {"url": callback, "format": fmt, "type": cb_type, "mq": mq},
    }


# -- outputs ------------------------------------------------------------------------------------------------
def _produce_output(data: bytes, svb: dict[str, str], logo: bytes | None, skip_pixel_work: bool) -> tuple[bytes, str]:
    """The job's output bytes and content type (see the module docstring)."""
    try:
        info = imaging.probe(data)
    except imaging.ImageDecodeError:
        return data, "video/mp4"  # a video (or anything else): the emulator cannot cut it out, it copies it
    if skip_pixel_work:
        return imaging.placeholder_png(info.width, info.height), "image/png"
    from PIL import Image

    img = imaging.decode_image(data)
    mask = imaging.subject_mask(img)
    threshold = int(svb.get("BinaryThreshold", "0"))
    if threshold:
        mask = mask.point(lambda v: 255 if v > threshold else 0)
    mode = svb.get("Mode", "Mask")
    if mode == "Mask":
        return imaging.to_png(mask), "image/png"
    if mode == "Combination" and logo is not None:
        try:
            background = imaging.decode_image(logo).convert("RGB").resize(img.size)
        except imaging.ImageDecodeError:
            background = Image.new("RGB", img.size, (0, 0, 0))
    else:
        colour = tuple(int(svb.get(n, "0")) for n in ("BackgroundRed", "BackgroundGreen", "BackgroundBlue"))
        background = Image.new("RGB", img.size, colour)  # type: ignore[arg-type]
    background.paste(img.convert("RGB"), (0, 0), mask)
    return imaging.to_png(background), "image/png"


def _format_name(key: str, content_type: str) -> str:
    ext = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    if content_type == "image/png":
        return "png"
    return ext or "mp4"


# -- the engine ---------------------------------------------------------------------------------------------
class JobEngine:
    """Job records, their timers, and callbacks. One per EmulatorState."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.available = True
        self._lock = threading.RLock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cb_tasks: set[asyncio.Task[None]] = set()
        self._callbacks: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client: httpx.AsyncClient | None = None
        self._reorder_rng = random.Random(7)
        self.queue_seconds = DEFAULT_QUEUE_SECONDS
        self.run_seconds = DEFAULT_RUN_SECONDS
        self.callback_attempts = CALLBACK_ATTEMPTS
        self.callback_backoff: tuple[float, ...] = CALLBACK_BACKOFF
        self._load()

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, timeout=CALLBACK_TIMEOUT)
        with self._lock:
            active = [j["JobId"] for j in self._jobs.values() if j["State"] in (SUBMITTED, RUNNING)]
        for job_id in active:  # resume timers after a restart
            self._start_timer(job_id)

    async def stop(self) -> None:
        tasks = list(self._tasks.values()) + list(self._cb_tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        self._cb_tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._save()
        self._loop = None
        self._loop_thread = None

    def reset(self) -> None:
        """Forget every job and callback; timings back to the defaults."""
        self._on_loop(self._cancel_all_tasks)
        with self._lock:
            self._jobs.clear()
            self._callbacks.clear()
            self._seq = 0
            self.queue_seconds = DEFAULT_QUEUE_SECONDS
            self.run_seconds = DEFAULT_RUN_SECONDS
        self._save()

    # -- control (tests, the facade) ------------------------------------------------------------------------------
    def set_timing(self, queue_seconds: float, run_seconds: float) -> None:
        if queue_seconds < 0 or run_seconds < 0:
            raise ValueError("job timings must be >= 0 seconds")
        with self._lock:
            self.queue_seconds = float(queue_seconds)
            self.run_seconds = float(run_seconds)
            active = [j["JobId"] for j in self._jobs.values() if j["State"] in (SUBMITTED, RUNNING) and not j["held"]]
        self._save()  # the timing persists with the jobs: a restarted emulator keeps its pace
        for job_id in active:  # re-arm with the new durations (elapsed time in the phase still counts)
            self._start_timer(job_id)

    def force_outcome(self, job_id: str, state: str, code: str | None = None, message: str | None = None) -> None:
        """Put a job into ``state`` now (any state; a terminal one ends the job and sends its callback)."""
        if state not in ALL_STATES:
            raise ValueError(f"state={state!r}: must be one of {', '.join(ALL_STATES)}")
        with self._lock:
            job = self._require(job_id)
            if state in TERMINAL:
                self._cancel_timer(job_id)
                self._finish(job, state, code, message, write_output=state == SUCCESS)
                return
            now = self._now()
            job["State"] = state
            job["held"] = False
            job["phase_started"] = now.timestamp()
            if state == RUNNING and job["StartTime"] == "-":
                job["StartTime"] = format_time(now)
            if code is not None:
                job["Code"] = code
            if message is not None:
                job["Message"] = message
            self._save()
        if state == PAUSE:
            self._cancel_timer(job_id)
        else:
            self._start_timer(job_id)

    def pause(self, job_id: str) -> None:
        """A job not yet started goes to Pause (as in a paused queue); a Running job is held where it is."""
        with self._lock:
            job = self._require(job_id)
            if job["State"] == SUBMITTED:
                job["State"] = PAUSE
            elif job["State"] == RUNNING:
                job["held"] = True
                job["held_elapsed"] = self._now().timestamp() - job["phase_started"]
            else:
                return
            self._save()
        self._cancel_timer(job_id)

    def resume(self, job_id: str) -> None:
        with self._lock:
            job = self._require(job_id)
            now = self._now().timestamp()
            if job["State"] == PAUSE:
                job["State"] = SUBMITTED
                job["phase_started"] = now
            elif job["State"] == RUNNING and job["held"]:
                job["held"] = False
                job["phase_started"] = now - float(job.pop("held_elapsed", 0.0))
            else:
                return
            self._save()
        self._start_timer(job_id)

    def list_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j["seq"])
            out = []
            for job in jobs:
                rec = copy.deepcopy(job)
                rec["UserData"] = job["Operation"].get("UserData")
                rec["detail"] = self.detail(job)
                out.append(rec)
            return out

    @property
    def callbacks_sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._callbacks)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None else None

    # -- records ------------------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self.state.now()
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)

    def _require(self, job_id: str) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no such job: {job_id}")
        return job

    def queue_id(self, bucket: str) -> str:
        return "p" + hashlib.md5(f"queue:{bucket}".encode()).hexdigest()

    def create(self, bucket: str, region: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = self._now()
        with self._lock:
            self._seq += 1
            job = {
                "JobId": "a" + uuid.uuid4().hex,
                "bucket": bucket,
                "region": region,
                "State": SUBMITTED,
                "Code": "Success",
                "Message": "",
                "CreationTime": format_time(now),
                "StartTime": "-",
                "EndTime": "-",
                "QueueId": self.queue_id(bucket),
                "created": now.timestamp(),
                "seq": self._seq,
                "phase_started": now.timestamp(),
                "held": False,
                **fields,
            }
            self._jobs[job["JobId"]] = job
            self._save()
        self._start_timer(job["JobId"])
        return job

    @staticmethod
    def detail(job: dict[str, Any]) -> dict[str, Any]:
        """JobsDetail in the documented element order."""
        op = job["Operation"]
        operation: dict[str, Any] = {"SegmentVideoBody": dict(op["SegmentVideoBody"])}
        for name in ("UserData", "JobLevel", "Output", "MediaInfo", "MediaResult"):
            if name in op:
                operation[name] = copy.deepcopy(op[name])
        return {
            "Code": job["Code"],
            "Message": job["Message"],
            "JobId": job["JobId"],
            "State": job["State"],
            "CreationTime": job["CreationTime"],
            "StartTime": job["StartTime"],
            "EndTime": job["EndTime"],
            "QueueId": job["QueueId"],
            "Tag": job["Tag"],
            "Input": dict(job["Input"]),
            "Operation": operation,
        }

    # -- persistence ----------------------------------------------------------------------------------------------
    def _path(self) -> Any:
        data_dir = getattr(self.state, "data_dir", None)
        return None if data_dir is None else data_dir / "jobs.json"

    def _load(self) -> None:
        path = self._path()
        if path is None or not path.exists():
            return
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return
        self._seq = int(doc.get("seq", 0))
        timing = doc.get("timing") or {}
        self.queue_seconds = float(timing.get("queue_seconds", self.queue_seconds))
        self.run_seconds = float(timing.get("run_seconds", self.run_seconds))
        for job in doc.get("jobs", []):
            job.setdefault("held", False)
            self._jobs[job["JobId"]] = job

    def _save(self) -> None:
        path = self._path()
        if path is None:
            return
        with self._lock:
            doc = {
                "seq": self._seq,
                "timing": {"queue_seconds": self.queue_seconds, "run_seconds": self.run_seconds},
                "jobs": sorted(self._jobs.values(), key=lambda j: j["seq"]),
            }
            text = json.dumps(doc, ensure_ascii=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)

    # -- loop plumbing ------------------------------------------------------------------------------------------
    def _on_loop(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the event loop: now if we are on it, else scheduled thread-safely."""
        loop = self._loop
        if loop is None or loop.is_closed():
            if loop is None:
                fn(*args)
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _start_timer(self, job_id: str) -> None:
        self._on_loop(self._start_timer_now, job_id)

    def _start_timer_now(self, job_id: str) -> None:
        self._cancel_timer_now(job_id)
        if self._loop is None:
            return  # not serving yet: start() arms the timers
        self._tasks[job_id] = self._loop.create_task(self._drive(job_id))

    def _cancel_timer(self, job_id: str) -> None:
        self._on_loop(self._cancel_timer_now, job_id)

    def _cancel_timer_now(self, job_id: str) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _cancel_all_tasks(self) -> None:
        for task in list(self._tasks.values()) + list(self._cb_tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks.clear()
        self._cb_tasks.clear()

    async def _drive(self, job_id: str) -> None:
        try:
            while True:
                with self._lock:
                    job = self._jobs.get(job_id)
                    if job is None or job["State"] not in (SUBMITTED, RUNNING) or job["held"]:
                        return
                    phase = job["State"]
                    duration = self.queue_seconds if phase == SUBMITTED else self.run_seconds
                    remaining = duration - (self._now().timestamp() - job["phase_started"])
                if remaining > 0:
                    await asyncio.sleep(remaining)
                with self._lock:
                    job = self._jobs.get(job_id)
                    if job is None or job["State"] != phase or job["held"]:
                        return
                    if phase == SUBMITTED:
                        now = self._now()
                        job["State"] = RUNNING
                        job["StartTime"] = format_time(now)
                        job["phase_started"] = now.timestamp()
                        self._save()
                        continue
                await self._complete(job_id)
                return
        except asyncio.CancelledError:
            return
        finally:
            if self._tasks.get(job_id) is asyncio.current_task():
                del self._tasks[job_id]

    async def _complete(self, job_id: str) -> None:
        """Running -> Success with a real output, or Failed when the input vanished."""
        with self._lock:
            job = self._jobs[job_id]
            bucket, obj = job["bucket"], job["Input"]["Object"]
            svb = dict(job["Operation"]["SegmentVideoBody"])
        src = self.state.store.get(bucket, obj)
        if src is None:
            with self._lock:
                if self._jobs.get(job_id) is job and job["State"] == RUNNING and not job["held"]:
                    self._finish(job, FAILED, "InputFileNotExist", f"input object {obj} does not exist", False)
            return
        logo: bytes | None = None
        if svb.get("BackgroundLogoUrl"):
            with contextlib.suppress(CosError):
                lb, lk = _logo_source(self.state, bucket, svb["BackgroundLogoUrl"])
                rec = self.state.store.get(lb, lk)
                logo = bytes(rec.data) if rec is not None else None
        skip = bool(getattr(self.state.faults, "skip_pixel_work", False))
        try:
            data, ctype = await asyncio.to_thread(_produce_output, bytes(src.data), svb, logo, skip)
        except Exception as exc:  # a broken input fails the job, as a real transcoder would
            with self._lock:
                if self._jobs.get(job_id) is job and job["State"] == RUNNING and not job["held"]:
                    self._finish(job, FAILED, "InternalError", f"processing failed: {exc}", False)
            return
        with self._lock:
            if self._jobs.get(job_id) is not job or job["State"] != RUNNING or job["held"]:
                return  # forced, held or reset while we worked
            self._finish(job, SUCCESS, None, None, True, output=(data, ctype))

    def _finish(
        self,
        job: dict[str, Any],
        state: str,
        code: str | None,
        message: str | None,
        write_output: bool,
        output: tuple[bytes, str] | None = None,
    ) -> None:
        """Enter a terminal state (under the lock), write the output on Success, send the callback."""
        now = self._now()
        if job["StartTime"] == "-" and state != CANCEL:
            job["StartTime"] = format_time(now)
        job["State"] = state
        job["EndTime"] = format_time(now)
        job["held"] = False
        if state == SUCCESS:
            job["Code"], job["Message"] = code or "Success", message or ""
        elif state == FAILED:
            job["Code"] = code or "InternalError"
            job["Message"] = message or "the job failed"
        else:
            job["Code"] = code or "Success"
            job["Message"] = message if message is not None else "job canceled"
        if write_output:
            self._write_output(job, output)
        self._save()
        self._emit_callback(job)

    def _write_output(self, job: dict[str, Any], output: tuple[bytes, str] | None) -> None:
        out = job["Operation"]["Output"]
        if output is None:  # forced Success: derive from the input without pixel work
            src = self.state.store.get(job["bucket"], job["Input"]["Object"])
            output = (bytes(src.data) if src is not None else b"", src.content_type if src else "video/mp4")
        data, ctype = output
        rec = self.state.store.put(out["Bucket"], out["Object"], data, content_type=ctype)
        job["Operation"]["MediaInfo"] = {
            "Format": {
                "Bitrate": "0",
                "Duration": "0",
                "FormatLongName": "",
                "FormatName": _format_name(out["Object"], ctype),
                "NumProgram": "0",
                "NumStream": "1",
                "Size": str(rec.size),
                "StartTime": "0",
            }
        }
        job["Operation"]["MediaResult"] = {
            "OutputFile": {"Bucket": out["Bucket"], "Region": out["Region"], "ObjectName": out["Object"]}
        }

    # -- callbacks ----------------------------------------------------------------------------------------------
    def _emit_callback(self, job: dict[str, Any]) -> None:
        cfg = job.get("callback") or {}
        url = cfg.get("url")
        if cfg.get("type") != "TDMQ" and (not url or url == "no"):
            return
        fmt = cfg.get("format") or "XML"
        detail = self.detail(job)
        if fmt == "JSON":
            body = json.dumps({"EventName": "TaskFinish", "JobsDetail": [detail]}, ensure_ascii=False)
        else:
            body = to_xml("Response", {"EventName": "TaskFinish", "JobsDetail": detail}).decode("utf-8")
        base = {
            "job_id": job["JobId"],
            "state": job["State"],
            "url": url,
            "format": fmt,
            "type": cfg.get("type") or "Url",
            "body": body,
        }
        if cfg.get("type") == "TDMQ":
            self._record({**base, "mq": cfg.get("mq"), "status": None, "attempt": 0, "copy": 0, "dropped": False})
            return
        plan = self.state.faults.callback_plan()
        if plan.drop:
            self._record({**base, "status": None, "attempt": 0, "copy": 0, "dropped": True})
            return
        delay = float(plan.delay)
        if getattr(self.state.faults, "callback_reorder", False):
            delay += self._reorder_rng.uniform(0.0, 0.3)  # random extra delay: later jobs may report first
        for n in range(max(1, int(plan.copies))):
            self._on_loop(self._spawn_send, base, delay, n)

    def _spawn_send(self, base: dict[str, Any], delay: float, copy_no: int) -> None:
        if self._loop is None:
            return
        task = self._loop.create_task(self._send(base, delay, copy_no))
        self._cb_tasks.add(task)
        task.add_done_callback(self._cb_tasks.discard)

    def _record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("time", self._now().isoformat())
        with self._lock:
            self._callbacks.append(entry)

    async def _send(self, base: dict[str, Any], delay: float, copy_no: int) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, timeout=CALLBACK_TIMEOUT)
        ctype = "application/json" if base["format"] == "JSON" else "application/xml"
        for attempt in range(1, self.callback_attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                resp = await self._client.post(
                    base["url"], content=base["body"].encode("utf-8"), headers={"Content-Type": ctype}
                )
                status = resp.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._record(
                {**base, "status": status, "error": error, "attempt": attempt, "copy": copy_no, "dropped": False}
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt < self.callback_attempts:
                backoff = self.callback_backoff[min(attempt - 1, len(self.callback_backoff) - 1)]
                await asyncio.sleep(backoff)


# -- handlers -----------------------------------------------------------------------------------------------
def _engine(state: Any) -> JobEngine:
    return state.jobs  # type: ignore[no-any-return]


def _require_bucket(state: Any, bucket: str | None) -> str:
    if not bucket or not state.store.has_bucket(bucket):
        raise CosError(404, "NoSuchBucket", f"The specified bucket does not exist: {bucket}")
    return bucket


def _xml_response(value: dict[str, Any]) -> EmuResponse:
    return EmuResponse(200, to_xml("Response", value), {}, "application/xml")


async def handle_create(state: Any, req: EmuRequest) -> EmuResponse:
    """POST /jobs: submit a SegmentVideoBody job."""
    bucket = _require_bucket(state, req.bucket)
    fields = parse_submit(state, req, bucket)
    job = _engine(state).create(bucket, req.region or state.default_region, fields)
    return _xml_response({"JobsDetail": JobEngine.detail(job)})


def _ids_from_path(req: EmuRequest) -> list[str]:
    rest = req.path.split("/jobs/", 1)[1] if "/jobs/" in req.path else ""
    rest = unquote(rest)  # tolerate a still-encoded %2C
    return [i.strip() for i in rest.split(",") if i.strip()]


async def handle_describe(state: Any, req: EmuRequest) -> EmuResponse:
    """GET /jobs/<id1,id2,...>: JobsDetail for known ids, NonExistJobIds for the rest."""
    bucket = _require_bucket(state, req.bucket)
    ids = _ids_from_path(req)
    if not ids:
        raise _bad("at least one job id is required")
    engine = _engine(state)
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for job_id in ids:
        job = engine.get(job_id)
        if job is None or job["bucket"] != bucket:
            missing.append(job_id)
        else:
            found.append(JobEngine.detail(job))
    value: dict[str, Any] = {}
    if found:
        value["JobsDetail"] = found
    if missing:
        value["NonExistJobIds"] = missing
    return _xml_response(value)


async def handle_list(state: Any, req: EmuRequest) -> EmuResponse:
    """GET /jobs?tag=...: filtered, ordered, paginated by nextToken."""
    bucket = _require_bucket(state, req.bucket)
    q = req.query
    tag = q.get("tag", "")
    if not tag:
        raise _bad("tag is required")
    states_raw = q.get("states", "All") or "All"
    if states_raw == "All":
        states: set[str] | None = None
    else:
        states = {s.strip() for s in states_raw.split(",") if s.strip()}
        bad = sorted(states - set(ALL_STATES))
        if bad or not states:
            raise _bad(f"states={states_raw!r} is invalid: use All or a comma list of {', '.join(ALL_STATES)}")
    order = q.get("orderByTime", "Desc") or "Desc"
    if order not in ("Desc", "Asc"):
        raise _bad(f"orderByTime={order!r} is invalid: must be Desc or Asc")
    size_raw = q.get("size", "10") or "10"
    if not size_raw.isdigit() or not 1 <= int(size_raw) <= LIST_MAX_SIZE:
        raise _bad(f"size={size_raw!r} is invalid: must be an integer within [1, {LIST_MAX_SIZE}]")
    size = int(size_raw)
    bounds: list[float | None] = []
    for name in ("startCreationTime", "endCreationTime"):
        raw = q.get(name, "")
        if raw:
            dt = parse_time(raw)
            if dt is None:
                raise _bad(f"{name}={raw!r} is invalid: format is like 2001-01-01T00:00:00+0800")
            bounds.append(dt.timestamp())
        else:
            bounds.append(None)
    start, end = bounds
    queue_id = q.get("queueId", "")
    input_object = q.get("inputObject", "")
    workflow_id = q.get("workflowId", "")
    jobs = [j for j in _engine(state).list_jobs() if j["bucket"] == bucket and j["Tag"] == tag]
    if workflow_id:
        jobs = []  # jobs submitted through this API never belong to a workflow
    if states is not None:
        jobs = [j for j in jobs if j["State"] in states]
    if queue_id:
        jobs = [j for j in jobs if j["QueueId"] == queue_id]
    if input_object:
        jobs = [j for j in jobs if j["Input"]["Object"] == input_object.lstrip("/")]
    # Whole seconds: the time format has no fraction, so a job created at 10:00:00.7 matches an end of 10:00:00.
    if start is not None:
        jobs = [j for j in jobs if int(j["created"]) >= start]
    if end is not None:
        jobs = [j for j in jobs if int(j["created"]) <= end]
    jobs.sort(key=lambda j: (j["created"], j["seq"]), reverse=order == "Desc")
    token = q.get("nextToken", "")
    if token:
        pos = next((i for i, j in enumerate(jobs) if _token(j) == token), None)
        if pos is None:
            raise _bad(f"nextToken={token!r} is invalid")
        jobs = jobs[pos + 1 :]
    page = jobs[:size]
    next_token = _token(page[-1]) if len(jobs) > size else ""
    value: dict[str, Any] = {}
    if page:
        value["JobsDetail"] = [j["detail"] for j in page]
    value["NextToken"] = next_token
    return _xml_response(value)


def _token(job: dict[str, Any]) -> str:
    return hashlib.md5(f"token:{job['JobId']}".encode()).hexdigest()


async def handle_cancel(state: Any, req: EmuRequest) -> EmuResponse:
    """PUT /jobs/<id>?cancel: only a job that has not started (Submitted, Pause) can be cancelled."""
    bucket = _require_bucket(state, req.bucket)
    ids = _ids_from_path(req)
    if len(ids) != 1:
        raise _bad("exactly one job id is required")
    engine = _engine(state)
    job_id = ids[0]
    with engine._lock:
        job = engine._jobs.get(job_id)
        if job is None or job["bucket"] != bucket:
            raise CosError(404, "NoSuchJob", f"job {job_id} does not exist")
        if job["State"] not in (SUBMITTED, PAUSE):
            raise _bad(f"job {job_id} is {job['State']}: only Submitted or Pause jobs can be cancelled")
        engine._cancel_timer(job_id)
        engine._finish(job, CANCEL, None, None, False)
    return EmuResponse(200, b"", {}, "application/xml")
