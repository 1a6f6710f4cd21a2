"""THE table of documented parameter constraints (one bad value each), shared by the catalogue test and
docs/constraint-cases.md. Regenerate the doc with ``python -m tests.reliability.catalogue`` (``make docs``).

Each row: the components it applies to, the parameter the error must name, the overrides applied to the
component's valid base arguments, the rule (as documented), and the stage at which it must fail:
``init`` (constructing the operator/sensor/trigger, i.e. DAG parse time) or ``execute`` (after rendering, before
any request). Either way the emulator must have seen zero requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MATTING = ("PortraitMattingOperator", "GoodsMattingOperator")
CI_IMAGE = (*MATTING, "FaceBeautyOperator")
IMAGE = (*CI_IMAGE, "SegmentPortraitPartsOperator")
SVB = ("SegmentVideoBodyOperator",)
SENSOR = ("SegmentVideoBodyJobSensor",)
TASK_TRIGGERS = ("CIJobTrigger", "CIJobCallbackTrigger")
EVENT_TRIGGER = ("CIJobEventTrigger",)

JOB = "a" + "0" * 32


@dataclass(frozen=True)
class Case:
    components: tuple[str, ...]
    param: str
    overrides: dict[str, Any]
    rule: str
    stage: str = "init"
    files: dict[str, str] = field(default_factory=dict)  # file name -> generator name (local images)
    bug: str = ""  # non-empty: the rule is NOT enforced today (the test is a strict xfail naming the bug)

    @property
    def shown_value(self) -> str:
        parts = []
        for k, v in self.overrides.items():
            text = "(omitted)" if v is DROP else repr(v)
            if len(text) > 40:
                text = text[:37] + "..."
            parts.append(f"{k}={text}")
        if self.files:
            parts.append("file: " + ", ".join(self.files.values()))
        return "; ".join(parts).replace("|", "\\|")


DROP = object()  # an override value that removes the argument from the base
# BDA with a local source file and a local output (the file comes from the case's ``files``).
BDA_LOCAL_SOURCE = {
    "source_key": DROP,
    "bucket": DROP,
    "portrait_output_key": DROP,
    "portrait_output_path": "/tmp/out-{stem}.png",
}

TABLE: list[Case] = [
    # -- image operators: sources, outputs, batch settings (shared) ---------------------------------------------
    Case(IMAGE, "bucket", {"bucket": ""}, "non-empty string"),
    Case(CI_IMAGE, "bucket", {"bucket": DROP}, "required"),
    Case(IMAGE, "output_bucket", {"output_bucket": " "}, "non-empty string"),
    Case(IMAGE, "source_key", {"source_key": "folder/"}, "an object key, not a folder (no trailing '/')"),
    Case(IMAGE, "source_keys", {"source_key": DROP, "source_keys": []}, "non-empty list of keys"),
    Case(
        CI_IMAGE,
        "source_keys",
        {"source_key": DROP, "source_keys": ["a.png", "dir/"], "output_key": "o/{stem}"},
        "every entry a non-empty key not ending in '/'",
        "execute",
    ),
    Case(IMAGE, "source_prefix", {"source_key": DROP, "source_prefix": 42}, "a string"),
    Case(IMAGE, "modified_after", {"modified_after": "2024-01-01"}, "only with source_prefix"),
    Case(
        IMAGE,
        "modified_after",
        {"source_key": DROP, "source_prefix": "in/", "modified_after": "yesterday-ish"},
        "a datetime or ISO-8601 string",
    ),
    Case(
        CI_IMAGE,
        "modified_before",
        {
            "source_key": DROP,
            "source_prefix": "in/",
            "modified_after": "2024-02-01",
            "modified_before": "2024-01-01",
            "output_key": "o/{stem}",
        },
        "later than modified_after",
        "execute",
    ),
    Case(IMAGE, "if_exists", {"if_exists": "maybe"}, "one of skip, overwrite"),
    Case(IMAGE, "max_concurrency", {"max_concurrency": 0}, "integer in 1..256"),
    Case(IMAGE, "max_concurrency", {"max_concurrency": 257}, "integer in 1..256"),
    Case(IMAGE, "continue_on_error", {"continue_on_error": "yes"}, "a boolean"),
    # -- CI image operators: modes ------------------------------------------------------------------------------
    Case(CI_IMAGE, "mode", {"mode": "sideways"}, "one of cloud, upload, download"),
    Case(CI_IMAGE, "source_prefix", {"source_prefix": "in/"}, "exactly one source (source_key/keys/prefix)"),
    Case(CI_IMAGE, "source_key", {"source_key": DROP}, "exactly one source (source_key/keys/prefix)"),
    Case(CI_IMAGE, "output_key", {"output_key": DROP}, "required in cloud and upload modes"),
    Case(CI_IMAGE, "output_key", {"output_key": "out/"}, "not ending in '/'"),
    Case(
        CI_IMAGE, "output_key", {"output_key": "out/{colour}.png"}, "known placeholders only: key, name, stem, ext, dir"
    ),
    Case(
        CI_IMAGE,
        "output_key",
        {"source_key": DROP, "source_prefix": "in/", "output_key": "out/one.png"},
        "a batch template must contain {key}, {name} or {stem}",
    ),
    Case(
        CI_IMAGE,
        "output_key",
        {"source_key": DROP, "source_keys": ["a/x.png", "b/x.png"], "output_key": "out/{name}"},
        "one output per source (no two the same)",
        "execute",
    ),
    Case(
        CI_IMAGE,
        "output_key",
        {"source_key": "in/a.png", "output_key": "{key}"},
        "must not overwrite its source",
        "execute",
    ),
    Case(CI_IMAGE, "output_path", {"output_path": "/tmp/x.png"}, "not allowed in cloud mode"),
    Case(CI_IMAGE, "detect_url", {"detect_url": "https://example.com/a.png"}, "download mode only"),
    Case(
        CI_IMAGE,
        "source_path",
        {"mode": "upload", "source_key": DROP, "upload_key": "up/{name}"},
        "required in upload mode",
    ),
    Case(
        CI_IMAGE,
        "source_key",
        {"mode": "upload", "source_path": "/tmp/a.png", "upload_key": "up/{name}"},
        "not allowed in upload mode",
    ),
    Case(
        CI_IMAGE,
        "upload_key",
        {"mode": "upload", "source_key": DROP, "source_path": "/tmp/a.png"},
        "required in upload mode",
    ),
    Case(
        CI_IMAGE,
        "source_path",
        {"mode": "upload", "source_key": DROP, "source_path": "/nonexistent/a.png", "upload_key": "up/{name}"},
        "an existing local file or directory",
        "execute",
    ),
    Case(
        CI_IMAGE,
        "output_path",
        {"mode": "download", "output_path": "/tmp/{name}"},
        "download mode: exactly one of output_key, output_path",
    ),
    Case(
        CI_IMAGE,
        "detect_url",
        {
            "mode": "download",
            "source_key": DROP,
            "detect_url": "ftp://example.com/a.png",
            "output_key": DROP,
            "output_path": "/tmp/x.png",
        },
        "an http(s) URL",
    ),
    # -- matting / face beauty parameters ------------------------------------------------------------------------
    Case(MATTING, "center_layout", {"center_layout": 2}, "0 or 1"),
    Case(MATTING, "padding_layout", {"padding_layout": "10x1001"}, "(dx, dy) integers 0..1000"),
    Case(MATTING, "padding_layout", {"padding_layout": "wide"}, "(dx, dy) or '<dx>x<dy>'"),
    Case(("FaceBeautyOperator",), "strength", {"strength": 1.5}, "number in 0..1"),
    Case(("FaceBeautyOperator",), "strength", {"strength": "nan"}, "number in 0..1"),
    Case(("FaceBeautyOperator",), "ignore_error", {"ignore_error": 2}, "0 or 1"),
    # -- BDA portrait parts --------------------------------------------------------------------------------------
    Case(("SegmentPortraitPartsOperator",), "parts", {"parts": []}, "non-empty list of the 21 parts"),
    Case(("SegmentPortraitPartsOperator",), "parts", {"parts": ["Hair", "Tail"]}, "each one of the 21 parts"),
    Case(
        ("SegmentPortraitPartsOperator",),
        "bda_region",
        {"bda_region": "ap-mars"},
        "ap-beijing, ap-guangzhou or ap-shanghai",
    ),
    Case(("SegmentPortraitPartsOperator",), "auto_resize", {"auto_resize": "perhaps"}, "a boolean"),
    Case(
        ("SegmentPortraitPartsOperator",),
        "url",
        {"url": "https://example.com/a.png"},
        "exactly one source (source_key/keys/prefix, source_path, url)",
    ),
    Case(("SegmentPortraitPartsOperator",), "url", {"source_key": DROP, "url": "file:///etc/passwd"}, "an http(s) URL"),
    Case(
        ("SegmentPortraitPartsOperator",),
        "source_path",
        {"source_key": DROP, "source_path": []},
        "a path or a non-empty list",
    ),
    Case(
        ("SegmentPortraitPartsOperator",),
        "portrait_output_key",
        {"portrait_output_key": DROP},
        "at least one output (COS key or local path)",
    ),
    Case(
        ("SegmentPortraitPartsOperator",),
        "portrait_output_key",
        {"bucket": DROP, "source_key": DROP, "url": "https://example.com/a.png"},
        "needs bucket or output_bucket",
    ),
    Case(("SegmentPortraitPartsOperator",), "mask_output_key", {"mask_output_key": "masks/"}, "not ending in '/'"),
    Case(
        ("SegmentPortraitPartsOperator",),
        "mask_output_path",
        {"mask_output_path": "/tmp/{oops}.png"},
        "known placeholders only",
    ),
    Case(
        ("SegmentPortraitPartsOperator",),
        "source_path",
        BDA_LOCAL_SOURCE,
        "PNG/JPG/JPEG/BMP, not GIF",
        "execute",
        {"source_path": "gif"},
    ),
    Case(
        ("SegmentPortraitPartsOperator",),
        "source_path",
        BDA_LOCAL_SOURCE,
        "width and height < 2000 (or auto_resize)",
        "execute",
        {"source_path": "wide_png"},
    ),
    Case(
        ("SegmentPortraitPartsOperator",),
        "source_path",
        BDA_LOCAL_SOURCE,
        "base64 <= 5 MiB (or auto_resize)",
        "execute",
        {"source_path": "heavy_bmp"},
    ),
    Case(
        ("SegmentPortraitPartsOperator",),
        "source_path",
        BDA_LOCAL_SOURCE,
        "a decodable image",
        "execute",
        {"source_path": "garbage"},
    ),
    # -- SegmentVideoBody ---------------------------------------------------------------------------------------
    Case(SVB, "bucket", {"bucket": ""}, "non-empty string"),
    Case(SVB, "input_object", {"input_object": ""}, "non-empty key"),
    Case(SVB, "input_object", {"input_object": "videos/"}, "not ending in '/'"),
    Case(SVB, "output_object", {"output_object": "out/"}, "not ending in '/'"),
    Case(SVB, "output_bucket", {"output_bucket": " "}, "non-empty string"),
    Case(SVB, "output_region", {"output_region": " "}, "non-empty string"),
    Case(SVB, "mode", {"mode": "Blur"}, "Mask, Foreground or Combination"),
    Case(SVB, "segment_type", {"segment_type": "Magic"}, "HumanSeg, GreenScreenSeg or SolidColorSeg"),
    Case(SVB, "background_red", {"mode": "Foreground", "background_red": 256}, "integer 0..255"),
    Case(SVB, "background_green", {"background_green": 10}, "only with mode Foreground"),
    Case(SVB, "binary_threshold", {"binary_threshold": -1}, "integer 0..255"),
    Case(SVB, "remove_red", {"remove_red": 10}, "only with segment_type SolidColorSeg"),
    Case(SVB, "remove_blue", {"segment_type": "SolidColorSeg", "remove_blue": 300}, "integer 0..255"),
    Case(SVB, "background_logo_url", {"mode": "Combination"}, "required with mode Combination"),
    Case(
        SVB,
        "background_logo_url",
        {"background_logo_url": "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/bg.png"},
        "only with mode Combination",
    ),
    Case(
        SVB,
        "background_logo_url",
        {
            "mode": "Combination",
            "background_logo_url": "https://otherbucket-1250000000.cos.ap-guangzhou.myqcloud.com/bg.png",
        },
        "same bucket as the source",
    ),
    Case(SVB, "user_data", {"user_data": "caf\u00e9"}, "printable ASCII"),
    Case(SVB, "user_data", {"user_data": "x" * 995}, "at most 994 characters (1024 minus the rerun marker)"),
    Case(SVB, "job_level", {"job_level": 3}, "0, 1 or 2"),
    Case(SVB, "callback_url", {"callback_url": "ftp://example.com/cb"}, "an http(s) URL or 'no'"),
    Case(SVB, "callback_format", {"callback_format": "YAML"}, "JSON or XML"),
    Case(SVB, "callback_type", {"callback_type": "Kafka"}, "Url or TDMQ"),
    Case(SVB, "callback_mq_config", {"callback_type": "TDMQ"}, "required with callback_type TDMQ"),
    Case(
        SVB,
        "callback_mq_config.MqMode",
        {"callback_type": "TDMQ", "callback_mq_config": {"MqRegion": "bj", "MqMode": "Fanout", "MqName": "q"}},
        "Queue or Topic",
    ),
    Case(
        SVB,
        "callback_mq_config",
        {"callback_mq_config": {"MqRegion": "bj", "MqMode": "Queue", "MqName": "q"}},
        "only with TDMQ",
    ),
    Case(
        SVB,
        "callback_mq_config",
        {
            "callback_type": "TDMQ",
            "callback_mq_config": {"MqRegion": "bj", "MqMode": "Queue", "MqName": "q", "Extra": "x"},
        },
        "no unknown keys",
    ),
    Case(
        SVB,
        "callback_url",
        {"use_callback_listener": True, "callback_url": "https://example.com/cb"},
        "not with use_callback_listener",
    ),
    Case(SVB, "poll_interval", {"poll_interval": 0}, "> 0 seconds"),
    Case(SVB, "max_wait", {"max_wait": -5}, "> 0 seconds or None"),
    Case(SVB, "job_query_batch_size", {"job_query_batch_size": 500}, "integer in 1..100"),
    # -- sensor -------------------------------------------------------------------------------------------------
    Case(SENSOR, "job_id", {"job_id": ""}, "non-empty string"),
    Case(SENSOR, "bucket", {"bucket": " "}, "non-empty string"),
    # -- triggers (constructed by operators, or by users in AssetWatcher) --------------------------------------
    Case(TASK_TRIGGERS, "job_id", {"job_id": ""}, "non-empty string"),
    Case(TASK_TRIGGERS, "bucket", {"bucket": ""}, "non-empty string"),
    Case(TASK_TRIGGERS, "poll_interval", {"poll_interval": 0}, "> 0 seconds"),
    Case(TASK_TRIGGERS, "batch_size", {"batch_size": 500}, "integer in 1..100"),
    Case(EVENT_TRIGGER, "bucket", {"bucket": ""}, "non-empty string"),
    Case(EVENT_TRIGGER, "channel", {"channel": "has space/slash"}, "1..64 chars of A-Z a-z 0-9 _ -"),
    Case(EVENT_TRIGGER, "poll_interval", {"poll_interval": 0}, "> 0 seconds"),
    Case(EVENT_TRIGGER, "states", {"states": ["Running"]}, "terminal states only: Success, Failed, Cancel"),
    Case(EVENT_TRIGGER, "max_pages", {"max_pages": 0}, "integer >= 1"),
]


def rows() -> list[tuple[str, str, str, str, str]]:
    out = []
    for case in TABLE:
        out.append((", ".join(case.components), case.param, case.shown_value, case.rule, case.stage))
    return out


def render() -> str:
    lines = [
        "# Parameter constraints: the bad-value catalogue",
        "",
        "Every documented parameter constraint of the operators, sensor and triggers, with one bad value each.",
        "Each row is a test case in `tests/reliability/test_catalogue.py`: the component must refuse the value with",
        "a `ParameterValidationError` naming the parameter, at the stage shown (`init`: constructing it, i.e. DAG",
        "parse time; `execute`: after template rendering), and the emulator must have received **zero** requests.",
        "",
        "Generated from `tests/reliability/catalogue.py` (`make docs`); a test fails when this file and the table",
        "differ. The rules themselves are described in [constraints.md](constraints.md).",
        "",
        "| # | Component(s) | Parameter | Bad value | Rule | Stage | Enforced |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, (case, (comp, param, value, rule, stage)) in enumerate(zip(TABLE, rows(), strict=False), 1):
        status = "**no** (open bug, strict xfail)" if case.bug else "yes"
        lines.append(f"| {n} | {comp} | `{param}` | `{value}` | {rule} | {stage} | {status} |")
    lines.append("")
    open_bugs = sum(len(c.components) for c in TABLE if c.bug)
    lines.append(
        f"{len(TABLE)} constraints, {sum(len(c.components) for c in TABLE)} cases; {open_bugs} cases not "
        "enforced yet (see the bug reasons in the table module)."
    )
    lines.append("")
    return "\n".join(lines)


DOC = Path(__file__).resolve().parents[2] / "docs" / "constraint-cases.md"

if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(TABLE)} rows)")
