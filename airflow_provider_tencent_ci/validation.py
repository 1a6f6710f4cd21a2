"""Local checks of documented parameter rules.

Every check raises :class:`ParameterValidationError` naming the parameter, the value and the rule, so bad
input fails before any paid request. Operators call these both at construction (for values that are not
templated) and after rendering.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from airflow_provider_tencent_ci.exceptions import ParameterValidationError


def is_templated(value: Any) -> bool:
    """True for a string that still holds a Jinja expression (checked again after rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


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
    """A duration or interval in seconds that must be > 0 (0 would poll in a tight loop)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterValidationError(param, value, "must be > 0 seconds") from None
    if isinstance(value, bool) or math.isnan(number) or number <= 0:
        raise ParameterValidationError(param, value, "must be > 0 seconds")
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


def check_object_key(param: str, value: Any) -> str:
    """A COS object key for a result: non-empty and not ending in '/' (an empty file name)."""
    check_non_empty_str(param, value)
    if value.endswith("/"):
        raise ParameterValidationError(param, value, "must not end with '/' (that names an empty file)")
    return value


def check_sequence_non_empty(param: str, value: Any) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ParameterValidationError(param, value, "must be a non-empty list")
    return value
