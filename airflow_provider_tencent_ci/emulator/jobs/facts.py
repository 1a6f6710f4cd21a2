"""Documented facts of the CI job API, restated here on purpose: the emulator is an oracle and must not share the
provider's constants (a shared misreading would then pass every test).

Sources: the SegmentVideoBody submit page (seed ci-segment-video-body-submit-job.txt, cn 460/84802, intl 1045/73058),
the job list page (intl 1045/73114, cn 460/84766), cancel (cn 1246/109264), callbacks (cn 460/84954, intl 436/48042).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

TAG = "SegmentVideoBody"
SUBMITTED, RUNNING, SUCCESS, FAILED, PAUSE, CANCEL = "Submitted", "Running", "Success", "Failed", "Pause", "Cancel"
ALL_STATES = (SUBMITTED, RUNNING, SUCCESS, FAILED, PAUSE, CANCEL)
ACTIVE = frozenset({SUBMITTED, RUNNING})  # states the timer drives
TERMINAL = frozenset({SUCCESS, FAILED, CANCEL})
# Cancel: "only jobs that have not started can be cancelled" (cn 1246/109264). A Pause job has not started either
# (a paused queue holds jobs waiting to run), so it stays cancellable.
CANCELLABLE = frozenset({SUBMITTED, PAUSE})

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

# Job list (intl 1045/73114): queueType is optional (no documented default); SegmentVideoBody runs on the
# AI Content Recognition queue, so its jobs are listed under AIProcess and under no other queue type.
QUEUE_TYPES = ("Transcoding", "Speeching", "PicProcess", "AIProcess", "SpeedTranscoding")
JOB_QUEUE_TYPE = "AIProcess"
LIST_MAX_SIZE = 100
LIST_DEFAULT_SIZE = 10
LIST_ORDERS = ("Desc", "Asc")

# CI reports job times in Beijing time: 2022-06-27T14:44:10+0800 (seed response sample).
CST = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
NOT_YET = "-"  # StartTime / EndTime before the job starts / ends (seed response sample)


def format_time(dt: datetime) -> str:
    return dt.astimezone(CST).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime | None:
    """A list filter time (``2001-01-01T00:00:00+0800``); None when it is not one."""
    raw = value.strip().replace(" ", "+")  # an unencoded "+" in a query string decodes to a space
    for fmt in (TIME_FORMAT, "%Y-%m-%dT%H:%M:%S"):
        try:
            dt = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        return dt if dt.tzinfo else dt.replace(tzinfo=CST)
    return None
