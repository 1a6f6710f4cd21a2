"""CosClientHook: the COS/CI client of a connection, shared by the object, image and job calls of CIHook."""

from __future__ import annotations

from typing import Any

from qcloud_cos import CosConfig, CosS3Client

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook
from airflow_provider_tencent_ci.hooks.credentials import Credentials
from airflow_provider_tencent_ci.hooks.sessions import http_session
from airflow_provider_tencent_ci.validation import check_non_empty_str


class CosClientHook(TencentCloudBaseHook):
    """One ``CosS3Client(conf, retry=0)`` per hook (our retry policy is the only retry loop), on the shared pool."""

    # Built on first use and kept while the credentials they were built with are current.
    _client: CosS3Client | None = None
    _client_creds: Credentials | None = None

    def get_conn(self) -> CosS3Client:
        """The hook's CosS3Client (built once; rebuilt only when temporary credentials rotate)."""
        return self._client_for(self.get_credentials())

    def _client_for(self, creds: Credentials) -> CosS3Client:
        with self._lock:  # no I/O here once credentials are known, so async callers may use it too
            if self._client is None or creds != self._client_creds:
                self._client = CosS3Client(self._cos_config(creds), retry=0, session=http_session())
                self._client_creds = creds
            return self._client

    def _cos_config(self, creds: Credentials) -> CosConfig:
        cfg = self.config
        if not cfg.region and not cfg.cos_endpoint:
            self.require_region()
        kwargs: dict[str, Any] = {
            "Region": cfg.region,
            "SecretId": creds.secret_id,
            "SecretKey": creds.secret_key,
            "Token": creds.token,
            "Scheme": cfg.scheme,
            "Timeout": cfg.timeout,
            "Proxies": cfg.proxy_map(),
        }
        if cfg.appid:
            kwargs["Appid"] = cfg.appid
        if cfg.cos_endpoint:
            kwargs["Endpoint"] = cfg.cos_endpoint
        if cfg.ci_endpoint:
            kwargs["EndpointCi"] = cfg.ci_endpoint
        return CosConfig(**kwargs)

    def bucket_name(self, bucket: str) -> str:
        """``bucket`` with ``-<appid>`` appended when it lacks an APPID suffix and the connection has an appid."""
        check_non_empty_str("bucket", bucket)
        tail = bucket.rsplit("-", 1)
        if len(tail) == 2 and tail[1].isdigit():
            return bucket
        appid = self.config.appid
        if not appid:
            raise ParameterValidationError(
                "bucket", bucket, "must be the full name <name>-<appid>, or set the connection extra 'appid'"
            )
        return f"{bucket}-{appid}"
