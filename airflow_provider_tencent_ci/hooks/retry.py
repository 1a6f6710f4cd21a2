"""Error translation and the retry policy shared by sync (SDK) and async (httpx) calls.

Every SDK/transport exception becomes a :class:`TencentCloudError` through ``exceptions.classify`` (the one error
table). Throttling, 5xx and network errors are retried by tenacity with exponential backoff and full jitter, up to
``max_attempts`` attempts in total; parameter, auth and not-found errors are raised at once. The SDKs' own retries
are switched off (``CosS3Client(conf, retry=0)``; the BDA client gets :class:`SdkRetryer`), so a request count
on the server equals our attempt count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx
import requests
from qcloud_cos.cos_exception import CosClientError, CosServiceError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.retry import StandardRetryer

from airflow_provider_tencent_ci.common.pacing import report_throttle
from airflow_provider_tencent_ci.exceptions import (
    TencentCloudAuthError,
    TencentCloudError,
    TencentCloudNetworkError,
    TencentCloudParameterError,
    TencentCloudServerError,
    TencentCloudThrottlingError,
    classify,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_MAX_MESSAGE = 500


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    # False for non-idempotent calls (job submission): only throttling, which means "not processed", is retried.
    idempotent: bool = True

    def retries(self, err: TencentCloudError) -> bool:
        """Whether a failed attempt that raised ``err`` is worth another attempt (attempts left permitting)."""
        return err.retryable and (self.idempotent or isinstance(err, TencentCloudThrottlingError))

    def with_idempotent(self, idempotent: bool) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.base_delay, self.max_delay, idempotent)

    def tenacity_args(
        self, operation: str, logger: Any, retry_on: tuple[type[BaseException], ...] = (Exception,)
    ) -> dict[str, Any]:
        """Arguments of ``tenacity.Retrying``/``AsyncRetrying``: ``max_attempts`` attempts in total, full jitter
        uniform in [0, min(max_delay, base_delay * 2**(attempt-1))], the last exception re-raised as is."""

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, retry_on):
                return False
            err = translate_error(exc, operation)
            return err is not None and self.retries(err)

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            err = translate_error(exc, operation) if exc is not None else None
            delay = state.next_action.sleep if state.next_action else 0.0
            if isinstance(err, TencentCloudThrottlingError):
                report_throttle()
            logger.warning(
                "%s (attempt %d of %d); retrying in %.2fs", err, state.attempt_number, self.max_attempts, delay
            )

        return {
            "stop": stop_after_attempt(self.max_attempts),
            "wait": wait_random_exponential(multiplier=self.base_delay, max=self.max_delay),
            "retry": retry_if_exception(retryable),
            "before_sleep": log_retry,
            "reraise": True,
        }


def _clip(text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text).strip()
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _known(value: Any) -> str | None:
    """The COS SDK reports every field as "Unknown" when the error document is incomplete."""
    if value in (None, "", "Unknown"):
        return None
    return str(value)


def make_error(
    code: str | None,
    message: str,
    *,
    status: int | None,
    request_id: str | None,
    operation: str,
) -> TencentCloudError:
    cls = classify(code, status)
    if cls is TencentCloudAuthError:
        message = f"Tencent Cloud refused the credential: {message}"
    return cls(message, code=code, request_id=request_id, status_code=status, operation=operation)


def translate_error(exc: BaseException, operation: str) -> TencentCloudError | None:
    """Map an SDK/transport exception to our hierarchy; None for exceptions that are not about the service."""
    if isinstance(exc, TencentCloudError):
        return exc
    if isinstance(exc, CosServiceError):
        status = exc.get_status_code()
        code = _known(exc.get_error_code())
        msg = _known(exc.get_error_msg())
        if msg is None:
            origin = exc.get_origin_msg()
            msg = f"HTTP {status}" + (f": {_clip(origin)}" if origin and not isinstance(origin, dict) else "")
        return make_error(code, _clip(msg), status=status, request_id=_known(exc.get_request_id()), operation=operation)
    if isinstance(exc, CosClientError):
        # The SDK raises CosClientError both for transport failures (inside ``except``: __context__ is the
        # requests exception) and for local argument errors.
        if isinstance(exc.__context__, (requests.RequestException, OSError)):
            return TencentCloudNetworkError(
                f"no answer from the service: {_clip(exc.__context__)}", operation=operation
            )
        return TencentCloudParameterError(_clip(exc), operation=operation)
    if isinstance(exc, TencentCloudSDKException):
        code = exc.get_code()
        msg = _clip(exc.get_message())
        rid = exc.get_request_id() or None
        if code == "ClientNetworkError":
            return TencentCloudNetworkError(f"no answer from the service: {msg}", operation=operation)
        if code == "ServerNetworkError":  # non-200 answer; the SDK drops the status code
            return TencentCloudServerError(f"unexpected HTTP answer: {msg}", operation=operation, request_id=rid)
        if code in ("InvalidCredential", "ClientError.MetadataError"):
            return TencentCloudAuthError(f"Tencent Cloud credential is unusable: {msg}", code=code, operation=operation)
        if code in ("ClientParamsError", "ClientError"):
            return TencentCloudParameterError(msg, code=code, operation=operation)
        return make_error(code, msg, status=None, request_id=rid, operation=operation)
    if isinstance(exc, httpx.TransportError):
        return TencentCloudNetworkError(
            f"no answer from the service: {type(exc).__name__}: {_clip(exc)}", operation=operation
        )
    if isinstance(exc, requests.RequestException):  # e.g. a stream broken mid-body
        return TencentCloudNetworkError(
            f"no answer from the service: {type(exc).__name__}: {_clip(exc)}", operation=operation
        )
    return None


def _raise_mapped(exc: Exception, operation: str) -> NoReturn:
    """Raise the mapped error of the last attempt (the original when it is ours or not about the service).

    Called from inside the caller's ``except`` block, so re-raising ``exc`` keeps the original traceback.
    """
    err = translate_error(exc, operation)
    if err is None or err is exc:
        raise exc
    raise err from None


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    operation: str,
    logger: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    try:
        return Retrying(sleep=sleep, **policy.tenacity_args(operation, logger or log))(fn)
    except Exception as exc:
        _raise_mapped(exc, operation)


async def acall_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    operation: str,
    logger: Any = None,
) -> T:
    try:
        return await AsyncRetrying(**policy.tenacity_args(operation, logger or log))(fn)
    except Exception as exc:
        _raise_mapped(exc, operation)


class SdkRetryer(StandardRetryer):
    """The API 3.0 SDK's retryer driven by our policy, so BDA calls have one retry loop, not two.

    ``StandardRetryer`` retries only network errors and RequestLimitExceeded*; we also retry server faults
    (InternalError at HTTP 200, as API 3.0 answers them) and stop sleeping after the last attempt. The SDK's
    exception is re-raised as is (the hook maps it).
    """

    def __init__(self, policy: RetryPolicy, operation: str, logger: Any = None) -> None:
        super().__init__(max_attempts=policy.max_attempts, logger=logger or log)
        self._tenacity_args = policy.tenacity_args(operation, self._logger, retry_on=(TencentCloudSDKException,))

    def send_request(self, fn: Callable[[], Any]) -> Any:
        return Retrying(sleep=time.sleep, **self._tenacity_args)(fn)
