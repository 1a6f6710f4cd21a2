"""Parameters of the SegmentVideoBody job (seed ``ci-segment-video-body-submit-job.txt``: the SubmitJob request,
Request / Request.Operation / Request.Operation.SegmentVideoBody) and of the job sensor."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_tencent_ci.constants import (
    CALLBACK_FORMATS,
    CALLBACK_TYPES,
    JOB_LEVELS,
    JOB_QUERY_BATCH_MAX,
    MQ_MODES,
    SVB_BACKGROUND_COLOR_MODE,
    SVB_COLOR_MAX,
    SVB_COLOR_MIN,
    SVB_LOGO_MODE,
    SVB_MODES,
    SVB_REMOVE_COLOR_SEGMENT_TYPE,
    SVB_SEGMENT_TYPES,
    USER_DATA_MAX_LEN,
)
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.params import Param, ParamSpec, Rule, Values
from airflow_provider_tencent_ci.params.image import CONNECTION_PARAMS
from airflow_provider_tencent_ci.validation import (
    check_bool,
    check_choice,
    check_int_range,
    check_non_empty_str,
    check_object_key,
    check_positive_seconds,
    check_printable_ascii,
)

SEED_SVB = "ci-segment-video-body-submit-job.txt"
# Every job's UserData ends with ";airflow-idem:<16 hex>" (the operator's rerun marker).
IDEMPOTENCY_PREFIX = "airflow-idem:"
IDEMPOTENCY_MARKER_LEN = len(IDEMPOTENCY_PREFIX) + 16
# The user's user_data and the rerun marker are joined with ";": this much is left for the user.
USER_DATA_USER_MAX_LEN = USER_DATA_MAX_LEN - IDEMPOTENCY_MARKER_LEN - 1
MQ_KEYS = ("MqRegion", "MqMode", "MqName")
DEFAULT_MODE = "Mask"
DEFAULT_SEGMENT_TYPE = "HumanSeg"

BACKGROUND_COLORS = ("background_red", "background_green", "background_blue")
REMOVE_COLORS = ("remove_red", "remove_green", "remove_blue")
CALLBACK_PARAMS = ("callback_url", "callback_type", "callback_mq_config")


def _color(param: str, value: Any) -> int:
    return check_int_range(param, value, SVB_COLOR_MIN, SVB_COLOR_MAX)


def _job_level(param: str, value: Any) -> int:
    return check_int_range(param, value, min(JOB_LEVELS), max(JOB_LEVELS))


def _user_data(param: str, value: Any) -> str:
    return check_printable_ascii(param, value, USER_DATA_USER_MAX_LEN)


def _callback_url(param: str, value: Any) -> str:
    check_non_empty_str(param, value)
    parts = urlsplit(value)
    if value != "no" and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ParameterValidationError(param, value, "must be an http(s) URL, or 'no'")
    return value


def _mq_config(param: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ParameterValidationError(param, value, f"must be a mapping of {', '.join(MQ_KEYS)}")
    for key in MQ_KEYS:
        check_non_empty_str(f"{param}.{key}", value.get(key))
    check_choice(f"{param}.MqMode", value["MqMode"], MQ_MODES)
    unknown = set(value) - set(MQ_KEYS)
    if unknown:
        raise ParameterValidationError(param, dict(value), f"unknown keys {sorted(unknown)}")
    return {k: str(value[k]) for k in MQ_KEYS}


def _lookback(param: str, value: Any) -> float:
    """0 turns the lookback off; otherwise a duration like any other."""
    if value == 0 or (isinstance(value, timedelta) and not value):
        return 0.0
    return check_positive_seconds(param, value)


def _batch_size(param: str, value: Any) -> int:
    return check_int_range(param, value, 1, JOB_QUERY_BATCH_MAX)


def bucket_of_url(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    for marker in (".cos.", ".ci.", ".cos-internal.", ".pic."):
        if marker in host:
            return host.split(marker, 1)[0]
    return None


def bucket_stem(bucket: str) -> str:
    """A bucket name without its ``-<appid>`` suffix (the operator accepts both spellings)."""
    name, sep, tail = bucket.rpartition("-")
    return name if sep and tail.isdigit() else bucket


# -- rules between parameters --------------------------------------------------------------------------------------
def _applies_only(names: tuple[str, ...], param: str, wanted: str, default: str) -> Rule:
    def check(values: Values) -> None:
        actual = values.get(param, default)
        for name in names:
            if values.given(name) and actual != wanted:
                raise ParameterValidationError(
                    name, values.raw[name], f"only takes effect when {param} is {wanted} ({param}={actual})"
                )

    return Rule((param, *names), f"{', '.join(names)} only take effect when {param} is {wanted}", check, SEED_SVB)


def _logo(values: Values) -> None:
    mode, logo = values.get("mode", DEFAULT_MODE), values.get("background_logo_url")
    if mode == SVB_LOGO_MODE and not logo:
        raise ParameterValidationError("background_logo_url", logo, f"is required when mode is {SVB_LOGO_MODE}")
    if logo and mode != SVB_LOGO_MODE:
        raise ParameterValidationError(
            "background_logo_url", logo, f"only takes effect when mode is {SVB_LOGO_MODE} (mode={mode})"
        )


def _logo_bucket(values: Values) -> None:
    logo, source = values.get("background_logo_url"), values.get("bucket")
    url_bucket = bucket_of_url(logo) if isinstance(logo, str) else None
    if url_bucket is not None and isinstance(source, str) and bucket_stem(url_bucket) != bucket_stem(source):
        raise ParameterValidationError(
            "background_logo_url", logo, f"must be in the same bucket as the source ({source})"
        )


def _mq_required(values: Values) -> None:
    if values.get("callback_type") == "TDMQ":
        if not values.given("callback_mq_config"):
            raise ParameterValidationError(
                "callback_mq_config",
                values.raw.get("callback_mq_config"),
                f"is required when callback_type is TDMQ ({', '.join(MQ_KEYS)})",
            )
    elif values.get("callback_mq_config"):
        raise ParameterValidationError(
            "callback_mq_config", values.raw["callback_mq_config"], "only applies when callback_type is TDMQ"
        )


def _listener_excludes(values: Values) -> None:
    if values.get("use_callback_listener"):
        for name in CALLBACK_PARAMS:
            if values.given(name):
                raise ParameterValidationError(
                    name, values.raw[name], "cannot be set with use_callback_listener=True (the listener sets CallBack)"
                )


_OP = "Operation.SegmentVideoBody"


def _one_of(name: str, choices: tuple[str, ...], wire: str) -> Param:
    """A documented enum of the SubmitJob request."""
    return Param(name, lambda n, v: check_choice(n, v, choices), f"one of {', '.join(choices)}", SEED_SVB, wire=wire)


def _color_param(name: str) -> Param:
    """A 0..255 colour component or threshold of ``Operation.SegmentVideoBody`` (``remove_red`` -> RemoveRed)."""
    rule = f"an integer in {SVB_COLOR_MIN}..{SVB_COLOR_MAX}"
    return Param(name, _color, rule, SEED_SVB, wire=f"{_OP}.{name.title().replace('_', '')}")


SVB_SPEC = ParamSpec(
    "SegmentVideoBodyOperator",
    (
        Param("bucket", check_non_empty_str, "a non-empty bucket name (name or name-appid)", SEED_SVB, required=True),
        Param(
            "input_object",
            check_object_key,
            "a non-empty key, not ending in '/'",
            SEED_SVB,
            wire="Input.Object",
            required=True,
        ),
        Param("output_object", check_object_key, "a non-empty key, not ending in '/'", SEED_SVB, required=True),
        Param("output_bucket", check_non_empty_str, "a non-empty bucket name (default: bucket)", SEED_SVB),
        Param("output_region", check_non_empty_str, "a non-empty region (default: the region)", SEED_SVB),
        _one_of("mode", SVB_MODES, f"{_OP}.Mode"),
        _one_of("segment_type", SVB_SEGMENT_TYPES, f"{_OP}.SegmentType"),
        *(_color_param(n) for n in BACKGROUND_COLORS),
        Param(
            "background_logo_url",
            check_non_empty_str,
            "a URL in the source's bucket",
            SEED_SVB,
            wire=f"{_OP}.BackgroundLogoUrl",
        ),
        _color_param("binary_threshold"),
        *(_color_param(n) for n in REMOVE_COLORS),
        Param(
            "user_data",
            _user_data,
            f"printable ASCII, at most {USER_DATA_USER_MAX_LEN} characters ({USER_DATA_MAX_LEN} minus the rerun "
            "marker)",
            SEED_SVB,
        ),
        Param(
            "job_level", _job_level, f"one of {', '.join(map(str, JOB_LEVELS))}", SEED_SVB, wire="Operation.JobLevel"
        ),
        Param("callback_url", _callback_url, "an http(s) URL, or 'no'", SEED_SVB, wire="CallBack"),
        _one_of("callback_format", CALLBACK_FORMATS, "CallBackFormat"),
        _one_of("callback_type", CALLBACK_TYPES, "CallBackType"),
        Param(
            "callback_mq_config",
            _mq_config,
            f"{{{', '.join(MQ_KEYS)}}}; MqMode one of {', '.join(MQ_MODES)}",
            SEED_SVB,
            wire="CallBackMqConfig",
            encode=dict,
        ),
        *CONNECTION_PARAMS,
        Param("use_callback_listener", check_bool, "a boolean", templated=False),
        Param("wait_for_completion", check_bool, "a boolean", templated=False),
        Param("deferrable", check_bool, "a boolean (default [operators] default_deferrable)", templated=False),
        Param("fail_on_pause", check_bool, "a boolean", templated=False),
        Param("cancel_on_kill", check_bool, "a boolean", templated=False),
        Param("poll_interval", check_positive_seconds, "> 0 seconds, finite, at most 366 days", templated=False),
        Param(
            "callback_fallback_poll_interval",
            check_positive_seconds,
            "> 0 seconds, finite, at most 366 days",
            templated=False,
        ),
        Param("max_wait", check_positive_seconds, "> 0 seconds, finite, at most 366 days, or None", templated=False),
        Param("reattach_lookback", _lookback, "0 (off) or > 0 seconds, finite, at most 366 days", templated=False),
        Param("job_query_batch_size", _batch_size, f"an integer in 1..{JOB_QUERY_BATCH_MAX}", templated=False),
    ),
    (
        _applies_only(BACKGROUND_COLORS, "mode", SVB_BACKGROUND_COLOR_MODE, DEFAULT_MODE),
        _applies_only(REMOVE_COLORS, "segment_type", SVB_REMOVE_COLOR_SEGMENT_TYPE, DEFAULT_SEGMENT_TYPE),
        Rule(
            ("mode", "background_logo_url"),
            f"background_logo_url is required when mode is {SVB_LOGO_MODE}, and only then",
            _logo,
            SEED_SVB,
        ),
        Rule(
            ("bucket", "background_logo_url"),
            "background_logo_url must be in the same bucket as the source",
            _logo_bucket,
            SEED_SVB,
        ),
        Rule(
            ("callback_type", "callback_mq_config"),
            "callback_mq_config is required when callback_type is TDMQ, and only then",
            _mq_required,
            SEED_SVB,
        ),
        Rule(
            ("use_callback_listener",),
            "use_callback_listener=True excludes callback_url, callback_type and callback_mq_config",
            _listener_excludes,
            presence=CALLBACK_PARAMS,
        ),
    ),
    blank_is_absent=True,
)

SENSOR_SPEC = ParamSpec(
    "SegmentVideoBodyJobSensor",
    (
        Param("job_id", check_non_empty_str, "a non-empty CI JobId", SEED_SVB, required=True),
        Param("bucket", check_non_empty_str, "a non-empty bucket name", SEED_SVB, required=True),
        *CONNECTION_PARAMS,
        Param("fail_on_pause", check_bool, "a boolean", templated=False),
        Param("deferrable", check_bool, "a boolean (default [operators] default_deferrable)", templated=False),
    ),
)


def svb_request(values: Values, tag: str) -> dict[str, Any]:
    """The ``<Request>`` of a validated SegmentVideoBody job (without UserData's marker and Output, added at submit).
    Mode and SegmentType are always sent (CI's defaults, written out)."""
    from airflow_provider_tencent_ci.params import nest

    checked = {"mode": DEFAULT_MODE, "segment_type": DEFAULT_SEGMENT_TYPE, **values.checked}
    request = nest(SVB_SPEC.wire(checked))
    request["Tag"] = tag
    request.setdefault("Operation", {}).setdefault("SegmentVideoBody", {})
    return request
