"""Facts from the Tencent Cloud API documents, in one place. Everything else imports them."""

from __future__ import annotations

from enum import Enum

DEFAULT_CONN_ID = "tencentcloud_default"
CONN_TYPE = "tencentcloud"


class CIProcess(str, Enum):
    """The ``ci-process`` values of the synchronous image APIs."""

    PORTRAIT_MATTING = "AIPortraitMatting"
    GOODS_MATTING = "GoodsMatting"
    FACE_BEAUTY = "AIFaceBeauty"


class ImageMode(str, Enum):
    """The three documented ways to run a CI image process."""

    CLOUD = "cloud"  # POST /<key>?image_process: source already in COS, result written to COS
    UPLOAD = "upload"  # PUT /<key> with Pic-Operations: upload and process in one call
    DOWNLOAD = "download"  # GET /<key>?ci-process=...: result in the response body


# Matting (AIPortraitMatting, GoodsMatting)
PADDING_LAYOUT_MAX = 1000
CENTER_LAYOUT_VALUES = (0, 1)
# Face beauty (AIFaceBeauty)
STRENGTH_MIN = 0.0
STRENGTH_MAX = 1.0
IGNORE_ERROR_VALUES = (0, 1)

# BDA SegmentCustomizedPortraitPic
BDA_HOST = "bda.tencentcloudapi.com"
BDA_REGIONS = ("ap-beijing", "ap-guangzhou", "ap-shanghai")
SEGMENTATION_PARTS: tuple[str, ...] = (
    "Background",
    "Hair",
    "LeftEyebrow",
    "RightEyebrow",
    "LeftEye",
    "RightEye",
    "Nose",
    "UpperLip",
    "LowerLip",
    "Tooth",
    "Mouth",
    "LeftEar",
    "RightEar",
    "Face",
    "Head",
    "Body",
    "Hat",
    "Headdress",
    "Earrings",
    "Necklace",
    "Belongings",
)
BDA_MAX_BASE64_BYTES = 5 * 1024 * 1024
BDA_MAX_DIMENSION_EXCLUSIVE = 2000  # width and height must be < 2000
BDA_IMAGE_FORMATS = ("PNG", "JPEG", "BMP")  # Pillow format names for PNG/JPG/JPEG/BMP; GIF refused


class JobState(str, Enum):
    """CI job states (JobsDetail.State)."""

    SUBMITTED = "Submitted"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    PAUSE = "Pause"
    CANCEL = "Cancel"


JOB_ACTIVE_STATES = frozenset({JobState.SUBMITTED.value, JobState.RUNNING.value, JobState.PAUSE.value})
JOB_FAILED_STATES = frozenset({JobState.FAILED.value, JobState.CANCEL.value})
JOB_TERMINAL_STATES = JOB_FAILED_STATES | {JobState.SUCCESS.value}

# SegmentVideoBody
SEGMENT_VIDEO_BODY_TAG = "SegmentVideoBody"
# Job list queue types (intl 1045/73114); SegmentVideoBody runs on AI Content Recognition, i.e. AIProcess.
QUEUE_TYPES = ("Transcoding", "Speeching", "PicProcess", "AIProcess", "SpeedTranscoding")
AI_QUEUE_TYPE = "AIProcess"
SVB_MODES = ("Mask", "Foreground", "Combination")
SVB_SEGMENT_TYPES = ("HumanSeg", "GreenScreenSeg", "SolidColorSeg")
SVB_COLOR_MIN = 0
SVB_COLOR_MAX = 255
JOB_LEVELS = (0, 1, 2)
USER_DATA_MAX_LEN = 1024
CALLBACK_FORMATS = ("JSON", "XML")
CALLBACK_TYPES = ("Url", "TDMQ")
MQ_MODES = ("Queue", "Topic")
JOB_LIST_MAX_SIZE = 100
# The batch maximum of GET /jobs/<id1,...> is not documented: stay conservative.
JOB_QUERY_BATCH_DEFAULT = 10
JOB_QUERY_BATCH_MAX = JOB_LIST_MAX_SIZE


# Image operators: reruns and batches
class IfExists(str, Enum):
    """What an image operator does when an item's output already exists."""

    SKIP = "skip"  # skip the paid call when the output exists and is not older than its source
    OVERWRITE = "overwrite"  # always redo the paid call


# Placeholders filled per item in output key/path templates (after Jinja rendering).
OUTPUT_PLACEHOLDERS: dict[str, str] = {
    "key": "the source object key (for a local file or URL: its file name)",
    "name": "the source file name with extension (last path segment)",
    "stem": "the source file name without its extension",
    "ext": "the source extension without the dot ('' when none)",
    "dir": "the source key's folder without the trailing '/' ('' at the bucket root)",
}
# Placeholders that differ between sources; a template for many sources must use one of them.
OUTPUT_PLACEHOLDERS_PER_ITEM = ("key", "name", "stem")
# User metadata (x-cos-meta-source) on every output the provider writes itself: which source it was made from, so an
# output that belongs to another source (two mapped tasks, one template) is neither skipped nor overwritten.
OUTPUT_SOURCE_METADATA = "source"
IMAGE_MAX_CONCURRENCY_DEFAULT = 8
IMAGE_MAX_CONCURRENCY_LIMIT = 256
# SegmentVideoBody parameter applicability (from the SubmitJob document): BackgroundRed/Green/Blue only take
# effect in Foreground mode, BackgroundLogoUrl is required in Combination mode (same bucket as the source),
# RemoveRed/Green/Blue only take effect with SegmentType SolidColorSeg.
SVB_BACKGROUND_COLOR_MODE = "Foreground"
SVB_LOGO_MODE = "Combination"
SVB_REMOVE_COLOR_SEGMENT_TYPE = "SolidColorSeg"
# CreationTime/StartTime/EndTime and the list API's start/endCreationTime look like 2001-01-01T00:00:00+0800.
JOB_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# Callback events carry JobsDetail for a finished job; workflow-started jobs send WorkflowFinish.
CALLBACK_EVENT_TASK_FINISH = "TaskFinish"
CALLBACK_EVENT_WORKFLOW_FINISH = "WorkflowFinish"
