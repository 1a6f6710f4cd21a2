"""One exception hierarchy for every Tencent Cloud call the provider makes.

Hooks translate SDK exceptions (``CosServiceError``, ``CosClientError``, ``TencentCloudSDKException``,
httpx errors) into these, so operators and users see the service's code, message and request id instead of
a stack trace from deep inside an SDK. Local validation errors are separate: they are raised before any
request is sent.
"""

from __future__ import annotations

from airflow.exceptions import AirflowException

try:
    from airflow.sdk.exceptions import AirflowFailException  # type: ignore[attr-defined,unused-ignore]  # >= 3.2
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,unused-ignore]

# Error codes that mean "slow down and try again" (COS/CI and API 3.0 services).
THROTTLING_CODES: frozenset[str] = frozenset(
    {
        "SlowDown",
        "RequestLimitExceeded",
        "RequestLimitExceeded.UinLimitExceeded",
        "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
        "RequestLimitExceeded.IPLimitExceeded",
        "TooManyRequests",
    }
)

# Error codes that mean the credential itself was refused.
AUTH_CODES: frozenset[str] = frozenset(
    {
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidAccessKeyId",
        "RequestTimeTooSkewed",
        "InvalidToken",
        "ExpiredToken",
        "AuthFailure",
        "AuthFailure.SignatureFailure",
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.SignatureExpire",
        "AuthFailure.InvalidSecretId",
        "AuthFailure.TokenFailure",
        "AuthFailure.UnauthorizedOperation",
        "AuthFailure.InvalidAuthorization",
        "AuthFailure.MFAFailure",
    }
)

# Error codes that are transient server faults even when the HTTP status is not 5xx.
SERVER_FAULT_CODES: frozenset[str] = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "InternalFailure",
        "FailedOperation.InnerError",
        "FailedOperation.ServerError",
        "FailedOperation.RequestTimeout",
        "FailedOperation.RpcFail",
        "FailedOperation.UnKnowError",
    }
)

NOT_FOUND_CODES: frozenset[str] = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchJob", "ResourceNotFound"})

# Error codes documented as the caller's fault in the request itself: the same request is refused the same way, so
# they are final (no Airflow retry). Sources: COS/CI error codes (intl/cn 436/7730: 400 InvalidArgument, InvalidRequest,
# MalformedXML, InvalidURI, InvalidDigest, KeyTooLong, EntityTooLarge/EntityTooSmall); API 3.0 common error codes (e.g.
# intl 1073/38701: InvalidParameter, InvalidParameterValue, MissingParameter, UnknownParameter, InvalidAction); BDA
# SegmentCustomizedPortraitPic's own table (cn 1208/47022, seed bda-segment-customized-portrait-pic.zh.txt) for the
# image faults. Not here, although 4xx: BadDigest and RequestTimeout (the body may have been damaged or slow on the
# way), FailedOperation.* codes that are service faults, and codes the documents do not name (those stay retryable
# by Airflow: the safe reading of an unknown answer).
INVALID_REQUEST_CODES: frozenset[str] = frozenset(
    {
        "InvalidArgument",
        "InvalidRequest",
        "MalformedXML",
        "InvalidURI",
        "InvalidDigest",
        "KeyTooLong",
        "EntityTooLarge",
        "EntityTooSmall",
        "InvalidAction",
        "MissingParameter",
        "UnknownParameter",
        "FailedOperation.ImageDecodeFailed",
        "FailedOperation.ImageNotSupported",
        "FailedOperation.ImageResolutionExceed",
        "FailedOperation.ImageResolutionInsufficient",
        "FailedOperation.ImageSizeExceed",
        "FailedOperation.RequestEntityTooLarge",
        "LimitExceeded.TooLargeFileError",
    }
)
# Families by prefix: InvalidParameter, InvalidParameter.*, InvalidParameterValue, InvalidParameterValue.*, and the
# dotted forms of MissingParameter / UnknownParameter.
INVALID_REQUEST_PREFIXES: tuple[str, ...] = ("InvalidParameter", "MissingParameter.", "UnknownParameter.")


class TencentCloudError(AirflowException):
    """A Tencent Cloud service (or the network on the way to it) refused a call."""

    retryable: bool = False
    # AirflowException declares status_code for API answers; ours is the Tencent service's HTTP status.
    status_code: int | None  # type: ignore[assignment]

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
        operation: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status_code = status_code
        self.operation = operation
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.operation:
            parts.append(f"{self.operation} failed")
        if self.code:
            parts.append(f"code={self.code}")
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        head = ", ".join(parts)
        return f"{head}: {self.message}" if head else self.message

    def __reduce__(self):  # keep keyword-only fields through pickling (Airflow ships exceptions between processes)
        return (
            _rebuild,
            (type(self), self.message, self.code, self.request_id, self.status_code, self.operation),
        )


def _rebuild(
    cls: type[TencentCloudError],
    message: str,
    code: str | None,
    request_id: str | None,
    status_code: int | None,
    operation: str | None,
) -> TencentCloudError:
    return cls(message, code=code, request_id=request_id, status_code=status_code, operation=operation)


class TencentCloudAuthError(TencentCloudError):
    """The credential was refused (bad SecretId/SecretKey, expired token, signature mismatch, no permission)."""


class TencentCloudParameterError(TencentCloudError):
    """The service rejected the request (a 4xx the other classes do not cover); the hook does not retry it.

    Airflow may still retry the task: an undocumented code could be about state that changes. The codes documented
    as the caller's fault raise the final subclass :class:`TencentCloudInvalidRequestError`.
    """


class TencentCloudInvalidRequestError(TencentCloudParameterError, AirflowFailException):
    """The service refused the request with a code documented as the caller's fault (``INVALID_REQUEST_CODES``).

    Final, like :class:`ParameterValidationError`: as an ``AirflowFailException`` it fails the task without Airflow
    retries (the same request would be refused the same way). The message keeps the service's code, message and
    request id.
    """


class TencentCloudNotFoundError(TencentCloudError):
    """The object, bucket or job does not exist."""


class TencentCloudPreconditionFailedError(TencentCloudError):
    """A conditional request's condition no longer holds (412 ``PreconditionFailed``, e.g. PUT Object - Copy's
    ``x-cos-copy-source-If-Match``, cn 436/10881): the object changed since it was read; retrying cannot help."""


class TencentCloudThrottlingError(TencentCloudError):
    """The service asked us to slow down (SlowDown, 503, RequestLimitExceeded*)."""

    retryable = True


class TencentCloudServerError(TencentCloudError):
    """A 5xx or an internal service fault."""

    retryable = True


class TencentCloudNetworkError(TencentCloudError):
    """The request did not get an answer: connection refused or reset, timeout, DNS."""

    retryable = True


class CIJobFailedError(TencentCloudError):
    """A CI job ended Failed or Cancel; ``code``/``message`` are CI's own."""


class ParameterValidationError(ValueError, AirflowFailException):
    """A user parameter broke a documented rule; raised locally before any request is sent.

    The message always names the parameter, the value and the rule. It is final: as an ``AirflowFailException`` it
    fails the task without retrying (the same input would fail the same way).
    """

    def __init__(self, param: str, value: object, rule: str) -> None:
        self.param = param
        self.value = value
        self.rule = rule
        super().__init__(f"Invalid {param}={value!r}: {rule}")

    def __reduce__(self):
        return (type(self), (self.param, self.value, self.rule))


def classify(code: str | None, status_code: int | None) -> type[TencentCloudError]:
    """Map a service error code and HTTP status to the exception class (the one error table)."""
    if code in THROTTLING_CODES or (code or "").startswith("RequestLimitExceeded") or status_code == 429:
        return TencentCloudThrottlingError
    if code in AUTH_CODES or (code or "").startswith("AuthFailure") or status_code in (401, 403):
        return TencentCloudAuthError
    if code in SERVER_FAULT_CODES or (status_code is not None and status_code >= 500):
        if status_code == 503 and code in (None, "", "ServiceUnavailable"):
            return TencentCloudThrottlingError
        return TencentCloudServerError
    if code in NOT_FOUND_CODES or status_code == 404:
        return TencentCloudNotFoundError
    if code == "PreconditionFailed" or status_code == 412:
        return TencentCloudPreconditionFailedError
    if code in INVALID_REQUEST_CODES or (code or "").startswith(INVALID_REQUEST_PREFIXES):
        return TencentCloudInvalidRequestError
    return TencentCloudParameterError
