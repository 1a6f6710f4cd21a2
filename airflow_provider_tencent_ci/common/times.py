"""CI and HTTP time formats, in one place.

- CI job times (JobsDetail CreationTime/StartTime/EndTime, the job list's start/endCreationTime) look like
  ``2001-01-01T00:00:00+0800`` (CI "查询任务列表" / DescribeMediaJobs pages; cos-go-sdk-v5 ``ci_media.go`` sends the
  same layout). Replies have also been seen with fractional seconds or ``Z``: parsing accepts any ISO-8601 form.
- COS object times: ``Last-Modified`` headers are RFC 7231 HTTP dates; ListObjects' ``LastModified`` is ISO-8601.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import pendulum

from airflow_provider_tencent_ci.exceptions import ParameterValidationError

CI_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def format_ci_time(value: datetime) -> str:
    """A timezone-aware datetime in CI's job-time layout."""
    return value.strftime(CI_TIME_FORMAT)


def parse_iso_time(value: Any) -> datetime | None:
    """An ISO-8601 time (CI job times, ListObjects' LastModified) as an aware datetime; None when absent or bad.

    A time without an offset is taken as UTC.
    """
    if not isinstance(value, str) or not value.strip() or value.strip() == "-":
        return None
    try:
        parsed = pendulum.parse(value.strip(), strict=False)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    if not isinstance(parsed, datetime):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_http_date(value: str | None) -> datetime | None:
    """An RFC 7231 HTTP date (``Last-Modified``) as an aware datetime; None when absent or bad."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def ci_time_param(param: str, value: Any) -> str | None:
    """A time argument of the job list API: a timezone-aware datetime, or a string passed as given."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ParameterValidationError(param, value, "must be timezone-aware")
        return format_ci_time(value)
    if isinstance(value, str):
        return value
    raise ParameterValidationError(param, value, "must be a datetime or a string like 2001-01-01T00:00:00+0800")


def aware_time_param(param: str, value: Any) -> datetime | None:
    """A modified-time bound: a datetime or an ISO-8601 string (e.g. ``{{ data_interval_start }}``).

    ``None``, ``""`` and ``"None"`` (what Jinja renders for a missing data interval) mean no bound; a naive
    datetime is taken as UTC.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    parsed = parse_iso_time(value) if isinstance(value, str) else None
    if parsed is None:
        raise ParameterValidationError(param, value, "must be a datetime or an ISO-8601 string")
    return parsed
