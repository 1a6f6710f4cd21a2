"""Local checks of documented parameter rules.

Every check raises :class:`ParameterValidationError` naming the parameter, the value and the rule, so bad
input fails before any paid request. The parameter descriptions in :mod:`airflow_provider_tencent_ci.params` use
these checks; operators run them at construction (for values that are already known) and after rendering.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_tencent_ci.exceptions import ParameterValidationError

# Durations beyond this are a mistake (1e308 or inf would crash later with OverflowError in timedelta/sleep).
MAX_SECONDS = 366 * 24 * 3600
FOLDER_RULE = "must not end with '/' (that names an empty file)"


def is_templated(value: Any) -> bool:
    """True for a string that still holds a Jinja expression (checked again after rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def is_unresolved(value: Any) -> bool:
    """True while a value is not known yet: Jinja text or an XComArg, also inside a list, tuple or dict."""
    if is_templated(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_unresolved(v) for v in value)
    if isinstance(value, Mapping):
        return any(is_unresolved(v) for v in value.values())
    from airflow.sdk import XComArg

    return isinstance(value, XComArg)


def check_choice(param: str, value: Any, choices: Iterable[Any]) -> Any:
    allowed = tuple(choices)
    if value not in allowed:
        raise ParameterValidationError(param, value, f"must be one of {', '.join(map(str, allowed))}")
    return value


def check_int_range(param: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ParameterValidationError(param, value, f"must be an integer in {lo}..{hi}")
    try:
        number = int(value)
    except ValueError:
        raise ParameterValidationError(param, value, f"must be an integer in {lo}..{hi}") from None
    if not lo <= number <= hi:
        raise ParameterValidationError(param, value, f"must be an integer in {lo}..{hi}")
    return number


def check_float_range(param: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise ParameterValidationError(param, value, f"must be a number in {lo}..{hi}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterValidationError(param, value, f"must be a number in {lo}..{hi}") from None
    if math.isnan(number) or not lo <= number <= hi:
        raise ParameterValidationError(param, value, f"must be a number in {lo}..{hi}")
    return number


def check_positive_seconds(param: str, value: Any) -> float:
    """A duration or interval in seconds (or a timedelta): > 0 (0 would poll in a tight loop), finite and at most
    :data:`MAX_SECONDS` (``inf``, ``nan`` and ``1e308`` are refused here instead of overflowing later)."""
    rule = f"must be > 0 seconds and at most {MAX_SECONDS} (366 days)"
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, bool):
        raise ParameterValidationError(param, value, rule)
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ParameterValidationError(param, value, rule) from None
    if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise ParameterValidationError(param, value, rule)
    return number


def check_name(param: str, value: Any, max_len: int = 64) -> str:
    """A short identifier that is safe in a URL path: letters, digits, '_' and '-'."""
    if not isinstance(value, str) or not re.fullmatch(rf"[A-Za-z0-9_\-]{{1,{max_len}}}", value):
        raise ParameterValidationError(param, value, f"must be 1..{max_len} chars of A-Z a-z 0-9 _ -")
    return value


def check_non_empty_str(param: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterValidationError(param, value, "must be a non-empty string")
    return value


def check_bool(param: str, value: Any) -> bool:
    """A boolean, or its rendered text ``True``/``False`` (Jinja renders booleans as text)."""
    if isinstance(value, bool):
        return value
    if value in ("True", "False", "true", "false"):
        return str(value).lower() == "true"
    raise ParameterValidationError(param, value, "must be a boolean")


def check_printable_ascii(param: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str):
        raise ParameterValidationError(param, value, f"must be a string of printable ASCII, at most {max_len} chars")
    if len(value) > max_len:
        raise ParameterValidationError(
            param, f"<{len(value)} chars>", f"must be printable ASCII, at most {max_len} chars"
        )
    if any(not (32 <= ord(ch) <= 126) for ch in value):
        raise ParameterValidationError(param, value, f"must be printable ASCII (0x20..0x7E), at most {max_len} chars")
    return value


def check_object_key(param: str, value: Any, rule: str = FOLDER_RULE) -> str:
    """A COS object key naming a file: non-empty and not ending in '/' (the one place for that rule)."""
    check_non_empty_str(param, value)
    if value.endswith("/"):
        raise ParameterValidationError(param, value, rule)
    return value


def check_key_list(param: str, value: Any) -> list[str]:
    """A non-empty list of object keys, none of them a folder."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ParameterValidationError(param, value, "must be a non-empty list of object keys")
    for v in value:
        check_object_key(param, v, f"every entry {FOLDER_RULE}")
    return list(value)


def check_one_or_many(param: str, value: Any, entry: Any = check_non_empty_str) -> list[Any]:
    """One string or a non-empty list of them; ``entry`` checks each. Returns the list."""
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ParameterValidationError(param, value, "must be a string or a non-empty list of strings")
    return [entry(param, e) for e in entries]


def check_http_url(param: str, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ParameterValidationError(param, value, "must be an http:// or https:// URL")
    return value


def require_region(region: str | None) -> str:
    """The region a call needs: the operator's ``region`` or the connection's extra (the one place for the rule)."""
    if not region:
        raise ParameterValidationError(
            "region", region, "set region (on the operator or hook) or the connection extra 'region', e.g. ap-guangzhou"
        )
    return region
