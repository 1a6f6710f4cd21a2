"""Parameters of the image operators: the shared source/batch parameters, the three CI image processes (seeds
``ci-ai-portrait-matting.txt``, ``ci-goods-matting.txt``, ``ci-ai-face-beauty.txt``) and BDA
SegmentCustomizedPortraitPic (seed ``bda-segment-customized-portrait-pic.zh.txt``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_tencent_ci.common.times import aware_time_param
from airflow_provider_tencent_ci.constants import (
    BDA_REGIONS,
    CENTER_LAYOUT_VALUES,
    IGNORE_ERROR_VALUES,
    IMAGE_MAX_CONCURRENCY_LIMIT,
    OUTPUT_PLACEHOLDERS,
    OUTPUT_PLACEHOLDERS_PER_ITEM,
    PADDING_LAYOUT_MAX,
    SEGMENTATION_PARTS,
    STRENGTH_MAX,
    STRENGTH_MIN,
    IfExists,
    ImageMode,
)
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.params import Param, ParamSpec, Rule, Values
from airflow_provider_tencent_ci.validation import (
    check_bool,
    check_choice,
    check_float_range,
    check_http_url,
    check_int_range,
    check_key_list,
    check_non_empty_str,
    check_object_key,
    check_one_or_many,
)

SEED_PORTRAIT = "ci-ai-portrait-matting.txt"
SEED_GOODS = "ci-goods-matting.txt"
SEED_BEAUTY = "ci-ai-face-beauty.txt"
SEED_BDA = "bda-segment-customized-portrait-pic.zh.txt"

COS_SOURCES = ("source_key", "source_keys", "source_prefix")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PADDING_RE = re.compile(r"^\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*$")


# -- checks of single parameters ------------------------------------------------------------------------------------
def check_template(param: str, value: Any) -> str:
    """An output template: non-empty, with known placeholders only (``constants.OUTPUT_PLACEHOLDERS``)."""
    if not isinstance(value, str) or not value.strip():
        raise ParameterValidationError(param, value, "must be a non-empty string")
    unknown = [n for n in _PLACEHOLDER.findall(value) if n not in OUTPUT_PLACEHOLDERS]
    if unknown:
        raise ParameterValidationError(
            param, value, f"unknown placeholder {{{unknown[0]}}}; allowed: {', '.join(OUTPUT_PLACEHOLDERS)}"
        )
    return value


def check_key_template(param: str, value: Any) -> str:
    """An output key template: a template that names a file (see ``validation.check_object_key``)."""
    return check_object_key(param, check_template(param, value))


def check_source_key(param: str, value: Any) -> str:
    return check_object_key(param, value, "must be an object key, not a folder")


def check_str(param: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterValidationError(param, value, "must be a string")
    return value


def check_concurrency(param: str, value: Any) -> int:
    return check_int_range(param, value, 1, IMAGE_MAX_CONCURRENCY_LIMIT)


def check_if_exists(param: str, value: Any) -> str:
    value = value.value if isinstance(value, IfExists) else value
    return str(check_choice(param, value, [e.value for e in IfExists]))


def check_mode(param: str, value: Any) -> str:
    value = value.value if isinstance(value, ImageMode) else value
    return str(check_choice(param, value, [m.value for m in ImageMode]))


def check_urls(param: str, value: Any) -> list[str]:
    return check_one_or_many(param, value, check_http_url)


def check_center_layout(param: str, value: Any) -> int:
    return int(check_choice(param, check_int_range(param, value, 0, 1), CENTER_LAYOUT_VALUES))


def check_padding_layout(param: str, value: Any) -> tuple[int, int]:
    rule = f"must be (dx, dy) or '<dx>x<dy>' with integers 0..{PADDING_LAYOUT_MAX}"
    parts: Sequence[Any]
    if isinstance(value, str):
        match = _PADDING_RE.match(value)
        if not match:
            raise ParameterValidationError(param, value, rule)
        parts = match.groups()
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        parts = value
    else:
        raise ParameterValidationError(param, value, rule)
    dx, dy = (check_int_range(f"{param}[{i}]", p, 0, PADDING_LAYOUT_MAX) for i, p in enumerate(parts))
    return dx, dy


def check_strength(param: str, value: Any) -> float:
    return check_float_range(param, value, STRENGTH_MIN, STRENGTH_MAX)


def check_ignore_error(param: str, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    return int(check_choice(param, check_int_range(param, value, 0, 1), IGNORE_ERROR_VALUES))


def check_parts(param: str, value: Any) -> list[str]:
    """At least one of the 21 SegmentationOptions names: a list, or a comma-separated string."""
    entries = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ParameterValidationError(param, value, f"must be a non-empty list of {', '.join(SEGMENTATION_PARTS)}")
    for part in entries:
        check_choice(param, part, SEGMENTATION_PARTS)
    return list(dict.fromkeys(entries))


def check_bda_region(param: str, value: Any) -> str:
    return str(check_choice(param, value, BDA_REGIONS))


# -- rules between parameters --------------------------------------------------------------------------------------
def is_batch(values: Values, list_params: Sequence[str]) -> bool:
    """A batch (list result) or one source (dict result): decided by the parameters' shape, not their size."""
    return (
        values.given("source_keys")
        or values.given("source_prefix")
        or any(isinstance(values.raw.get(n), (list, tuple)) for n in list_params)
    )


def require_one(values: Values, names: Sequence[str], rule: str) -> None:
    given = [n for n in names if values.given(n)]
    if len(given) != 1:
        shown = {n: values.raw.get(n) for n in (given or names)}
        raise ParameterValidationError(" / ".join(given or names), shown, rule)


def _only_with_prefix(values: Values) -> None:
    for name in ("modified_after", "modified_before"):
        if values.given(name) and not values.given("source_prefix"):
            raise ParameterValidationError(name, values.raw[name], "only applies with source_prefix")


def _window_order(values: Values) -> None:
    after, before = values.get("modified_after"), values.get("modified_before")
    if after and before and after >= before:
        rule = f"must be later than modified_after={values.raw.get('modified_after')!r}"
        raise ParameterValidationError("modified_before", values.raw.get("modified_before"), rule)


def per_item_templates(templates: Sequence[str], list_params: Sequence[str]) -> Rule:
    def check(values: Values) -> None:
        if not is_batch(values, list_params):
            return
        for name in templates:
            value = values.get(name)
            if isinstance(value, str) and not any(
                n in OUTPUT_PLACEHOLDERS_PER_ITEM for n in _PLACEHOLDER.findall(value)
            ):
                raise ParameterValidationError(
                    name,
                    value,
                    "must contain {key}, {name} or {stem} when processing many sources "
                    "(else every item gets one output)",
                )

    return Rule(
        tuple(templates),
        "a template for many sources must contain {key}, {name} or {stem}",
        check,
        presence=(*COS_SOURCES, *list_params),
    )


@dataclass(frozen=True)
class ModeRule:
    """What one CI image mode takes: its sources (exactly one), required outputs, and what it refuses."""

    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    required: tuple[str, ...] = ()
    one_output_of: tuple[str, ...] = ()


CI_MODES: dict[str, ModeRule] = {
    ImageMode.CLOUD.value: ModeRule(
        COS_SOURCES, ("source_path", "upload_key", "detect_url", "output_path"), required=("output_key",)
    ),
    ImageMode.UPLOAD.value: ModeRule(
        ("source_path",), (*COS_SOURCES, "detect_url", "output_path"), required=("upload_key", "output_key")
    ),
    ImageMode.DOWNLOAD.value: ModeRule(
        (*COS_SOURCES, "detect_url"), ("source_path", "upload_key"), one_output_of=("output_key", "output_path")
    ),
}


def _ci_mode(values: Values) -> None:
    mode = values.get("mode", ImageMode.CLOUD.value)
    spec = CI_MODES[mode]
    for name in spec.forbidden:
        if values.given(name):
            raise ParameterValidationError(name, values.raw[name], f"not allowed in {mode} mode")
    require_one(
        values, spec.sources, f"exactly one source is required in {mode} mode: one of {', '.join(spec.sources)}"
    )
    if not values.given("bucket"):
        raise ParameterValidationError("bucket", None, "is required (the bucket whose CI endpoint processes)")
    for name in spec.required:
        if not values.given(name):
            raise ParameterValidationError(name, None, f"is required in {mode} mode")
    if spec.one_output_of:
        require_one(values, spec.one_output_of, f"{mode} mode writes to output_key or output_path")


_BDA_SOURCES = (*COS_SOURCES, "source_path", "url")
_BDA_KEYS = ("portrait_output_key", "mask_output_key")
_BDA_PATHS = ("portrait_output_path", "mask_output_path")


def _bda_sources(values: Values) -> None:
    require_one(values, _BDA_SOURCES, f"exactly one source is required: one of {', '.join(_BDA_SOURCES)}")
    if not values.given("bucket") and any(values.given(n) for n in COS_SOURCES):
        raise ParameterValidationError("bucket", None, "is required with source_key/source_keys/source_prefix")


def _bda_outputs(values: Values) -> None:
    keys = [n for n in _BDA_KEYS if values.given(n)]
    if not keys and not any(values.given(n) for n in _BDA_PATHS):
        raise ParameterValidationError(
            "portrait_output_key/portrait_output_path", None, "at least one output (a COS key or a local path)"
        )
    if keys and not values.given("bucket") and not values.given("output_bucket"):
        raise ParameterValidationError(keys[0], values.raw[keys[0]], "needs bucket or output_bucket")


# -- the specs -----------------------------------------------------------------------------------------------------
CONNECTION_PARAMS = (
    Param("tencentcloud_conn_id", check_non_empty_str, "a non-empty connection id"),
    Param("region", check_non_empty_str, "a non-empty region (default: the connection's extra 'region')"),
)

IMAGE_SPEC = ParamSpec(
    "image operators (shared)",
    (
        Param("bucket", check_non_empty_str, "a non-empty bucket name (name or name-appid)"),
        Param("source_key", check_source_key, "an object key, not a folder (no trailing '/')"),
        Param("source_keys", check_key_list, "a non-empty list of object keys, none ending in '/'"),
        Param("source_prefix", check_str, "a string (every object under it is a source)"),
        Param("modified_after", aware_time_param, "a datetime or an ISO-8601 string ('', 'None': no bound)"),
        Param("modified_before", aware_time_param, "a datetime or an ISO-8601 string ('', 'None': no bound)"),
        Param("output_bucket", check_non_empty_str, "a non-empty bucket name"),
        Param("if_exists", check_if_exists, f"one of {', '.join(e.value for e in IfExists)}"),
        Param("max_concurrency", check_concurrency, f"an integer in 1..{IMAGE_MAX_CONCURRENCY_LIMIT}"),
        Param("continue_on_error", check_bool, "a boolean"),
        *CONNECTION_PARAMS,
    ),
    (
        Rule(
            ("modified_after", "modified_before"),
            "modified_after/modified_before only apply with source_prefix",
            _only_with_prefix,
            presence=("source_prefix",),
        ),
        Rule(("modified_after", "modified_before"), "modified_before must be later than modified_after", _window_order),
    ),
)

_CI_LISTS = ("source_path", "detect_url")

CI_IMAGE_SPEC = IMAGE_SPEC.with_params(
    "CI image operators (shared)",
    Param("mode", check_mode, f"one of {', '.join(m.value for m in ImageMode)}"),
    Param("source_path", check_one_or_many, "upload mode: a local path or a non-empty list of paths"),
    Param("upload_key", check_key_template, "upload mode: a key template (known placeholders, no trailing '/')"),
    Param("detect_url", check_urls, "download mode: an http(s) URL or a non-empty list of them", SEED_PORTRAIT),
    Param("output_key", check_key_template, "a key template (known placeholders, no trailing '/')"),
    Param("output_path", check_template, "download mode: a local path template (known placeholders)"),
    rules=(
        Rule(
            ("mode",),
            "per mode: exactly one source (cloud: source_key/keys/prefix; upload: source_path; download: "
            "source_key/keys/prefix or detect_url), bucket required, outputs (cloud: output_key; upload: upload_key "
            "and output_key; download: exactly one of output_key, output_path), nothing of another mode",
            _ci_mode,
            presence=(*COS_SOURCES, "bucket", "source_path", "upload_key", "detect_url", "output_key", "output_path"),
        ),
        per_item_templates(("upload_key", "output_key", "output_path"), _CI_LISTS),
    ),
)

MATTING_PARAMS = (
    Param(
        "center_layout",
        check_center_layout,
        "0 or 1 (1 centres the subject)",
        f"{SEED_PORTRAIT}, {SEED_GOODS}",
        wire="center-layout",
    ),
    Param(
        "padding_layout",
        check_padding_layout,
        f"(dx, dy) or '<dx>x<dy>', integers 0..{PADDING_LAYOUT_MAX}",
        f"{SEED_PORTRAIT}, {SEED_GOODS}",
        wire="padding-layout",
        encode=lambda v: f"{v[0]}x{v[1]}",
    ),
)
PORTRAIT_MATTING_SPEC = CI_IMAGE_SPEC.with_params("PortraitMattingOperator", *MATTING_PARAMS)
GOODS_MATTING_SPEC = CI_IMAGE_SPEC.with_params("GoodsMattingOperator", *MATTING_PARAMS)
FACE_BEAUTY_SPEC = CI_IMAGE_SPEC.with_params(
    "FaceBeautyOperator",
    # repr of a float is its shortest exact form ("0.3", not "0.29999999999999999")
    Param(
        "strength",
        check_strength,
        f"a number in {STRENGTH_MIN}..{STRENGTH_MAX}",
        SEED_BEAUTY,
        wire="strength",
        encode=lambda v: repr(float(v)),
    ),
    Param("ignore_error", check_ignore_error, "0 or 1 (or a boolean)", SEED_BEAUTY, wire="ignore-error"),
)

BDA_SPEC = IMAGE_SPEC.with_params(
    "SegmentPortraitPartsOperator",
    Param(
        "parts",
        check_parts,
        f"a non-empty list (or comma-separated string) of {', '.join(SEGMENTATION_PARTS)}",
        SEED_BDA,
        required=True,
    ),
    Param("source_path", check_one_or_many, "a local path or a non-empty list of paths"),
    Param("url", check_urls, "an http(s) URL or a non-empty list of them", SEED_BDA),
    Param("portrait_output_key", check_key_template, "a key template (known placeholders, no trailing '/')"),
    Param("mask_output_key", check_key_template, "a key template (known placeholders, no trailing '/')"),
    Param("portrait_output_path", check_template, "a local path template (known placeholders)"),
    Param("mask_output_path", check_template, "a local path template (known placeholders)"),
    Param("auto_resize", check_bool, "a boolean"),
    Param("bda_region", check_bda_region, f"one of {', '.join(BDA_REGIONS)}", SEED_BDA),
    rules=(
        Rule(
            (),
            "exactly one source: source_key/keys/prefix (with bucket), source_path or url",
            _bda_sources,
            presence=(*_BDA_SOURCES, "bucket"),
        ),
        Rule(
            (),
            "at least one output; COS outputs need bucket or output_bucket",
            _bda_outputs,
            presence=(*_BDA_KEYS, *_BDA_PATHS, "bucket", "output_bucket"),
        ),
        per_item_templates((*_BDA_KEYS, *_BDA_PATHS), ("source_path", "url")),
    ),
)
