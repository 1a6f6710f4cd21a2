"""BDAHook: SegmentCustomizedPortraitPic on tencentcloud-sdk-python-bda (API 3.0, TC3-HMAC-SHA256).

Retries run inside the SDK's retryer (:class:`SdkRetryer`, a ``StandardRetryer`` driven by our policy), so there
is exactly one retry loop; failures are mapped to the TencentCloudError hierarchy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tencentcloud.bda.v20200324 import bda_client, models
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile

from airflow_provider_tencent_ci.constants import BDA_HOST, SEGMENTATION_PARTS
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook
from airflow_provider_tencent_ci.hooks.credentials import Credentials
from airflow_provider_tencent_ci.hooks.retry import SdkRetryer, translate_error

_OPERATION = "SegmentCustomizedPortraitPic"


class BDAHook(TencentCloudBaseHook):
    """Body analysis (BDA) calls. Region must be one of ``constants.BDA_REGIONS`` on the real service."""

    # Built on first use and kept while the credentials they were built with are current.
    _client: bda_client.BdaClient | None = None
    _client_creds: Credentials | None = None

    def get_conn(self) -> bda_client.BdaClient:
        """The hook's BdaClient (rebuilt only when temporary credentials rotate)."""
        creds = self.get_credentials()
        with self._lock:
            if self._client is None or creds != self._client_creds:
                cfg = self.config
                region = self.require_region()
                profile = ClientProfile(httpProfile=cfg.http_profile(cfg.bda_endpoint or BDA_HOST))
                profile.retryer = SdkRetryer(self.retry_policy, _OPERATION, logger=self.log)
                # The region circuit breaker would fail calls locally after errors; our retry policy decides instead.
                profile.disable_region_breaker = True
                self._client = bda_client.BdaClient(
                    SdkCredential(creds.secret_id, creds.secret_key, creds.token), region, profile
                )
                self._client_creds = creds
            return self._client

    def segment_customized_portrait_pic(
        self, parts: Sequence[str], image_base64: str | None = None, url: str | None = None
    ) -> dict[str, Any]:
        """Segment the named parts; returns PortraitImage, MaskImage, ImageRects, RequestId."""
        if isinstance(parts, str) or not isinstance(parts, Sequence) or not parts:
            rule = f"must be a non-empty list of {', '.join(SEGMENTATION_PARTS)}"
            raise ParameterValidationError("parts", parts, rule)
        for part in parts:
            if part not in SEGMENTATION_PARTS:
                raise ParameterValidationError("parts", part, f"must be one of {', '.join(SEGMENTATION_PARTS)}")
        if not image_base64 and not url:
            raise ParameterValidationError("image_base64/url", None, "one of image_base64 or url is required")
        if image_base64 and url:
            # cn 1208/47022: "if both are given only Url is used", so the Image (up to 5 MB) would be sent for
            # nothing. The values are not shown: a pre-signed Url carries a signature.
            raise ParameterValidationError(
                "image_base64/url", "<both given>", "give either image_base64 or url, not both"
            )

        req = models.SegmentCustomizedPortraitPicRequest()
        options = models.SegmentationOptions()
        for part in parts:
            setattr(options, part, True)
        req.SegmentationOptions = options
        if url:
            req.Url = url
        if image_base64:
            req.Image = image_base64

        client = self.get_conn()
        try:
            resp = client.SegmentCustomizedPortraitPic(req)
        except TencentCloudSDKException as exc:
            err = translate_error(exc, _OPERATION)
            if err is None:  # pragma: no cover - translate_error maps every SDK exception
                raise
            raise err from None
        result: dict[str, Any] = json.loads(resp.to_json_string())
        return result
