"""Extra links to the Tencent Cloud console.

Airflow 3 stores each link's final URL in XCom (key ``_link_<ClassName>``) when the task finishes: the task runner
calls ``get_link`` on the worker. ``get_link`` therefore reads what the operator persisted during ``execute`` (a
small dict under :attr:`TencentConsoleLink.key`), as the Amazon/Google providers do, and formats the URL from it.

To add a link (e.g. ``CIJobLink``), subclass :class:`TencentConsoleLink`, set ``name``, ``key`` and ``format_url``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey  # type: ignore[attr-defined]  # 3.1: airflow.models

CONSOLE_BASE = "https://console.cloud.tencent.com"


class TencentConsoleLink(BaseOperatorLink):
    """Base class: persists a dict of URL fields at execute time and turns it into a URL afterwards."""

    name: ClassVar[str] = "Tencent Cloud Console"  # type: ignore[misc]
    key: ClassVar[str] = "tencent_console"

    @classmethod
    def format_url(cls, **fields: Any) -> str:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    @classmethod
    def persist(cls, context: Context, **fields: Any) -> None:
        """Store the URL fields for this task instance (call from ``execute``)."""
        context["ti"].xcom_push(key=cls.key, value=fields)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        fields = XCom.get_value(key=self.key, ti_key=ti_key)
        if not fields:
            return ""
        try:
            return self.format_url(**fields)
        except (TypeError, KeyError, ValueError):
            return ""


class COSObjectLink(TencentConsoleLink):
    """The COS console page of the bucket folder that holds the task's output object(s).

    For one output it opens the object's folder; for a batch, the longest folder shared by every output.
    """

    name: ClassVar[str] = "COS Output"  # type: ignore[misc]
    key: ClassVar[str] = "cos_object"

    @classmethod
    def format_url(cls, **fields: Any) -> str:
        bucket, key, region = str(fields["bucket"]), str(fields.get("key") or ""), fields.get("region")
        folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        query: dict[str, str] = {"bucket": bucket}
        if region:
            query["region"] = region
        query["path"] = "/" + folder
        return f"{CONSOLE_BASE}/cos/bucket?{urlencode(query, quote_via=quote, safe='')}"


def common_folder(keys: list[str]) -> str:
    """The longest ``a/b/`` folder prefix shared by every key ("" when none)."""
    if not keys:
        return ""
    folders = [k.split("/")[:-1] for k in keys]
    shared: list[str] = []
    for parts in zip(*folders, strict=False):  # stops at the shortest folder
        if len(set(parts)) != 1:
            break
        shared.append(parts[0])
    return "/".join(shared) + "/" if shared else ""


class CIJobLink(TencentConsoleLink):
    """The CI console's job page of the bucket, filtered on the task's job id.

    (Added by the SegmentVideoBody helper.) The console has no documented deep link to one job; the bucket's job
    management page with the job id in the query is the closest stable URL.
    """

    name: ClassVar[str] = "CI Job"  # type: ignore[misc]
    key: ClassVar[str] = "ci_job"

    @classmethod
    def format_url(cls, *, bucket: str, job_id: str, region: str | None = None, **_: Any) -> str:  # type: ignore[override]
        query: dict[str, str] = {"bucket": bucket}
        if region:
            query["region"] = region
        query["type"] = "jobmanage"
        query["jobId"] = job_id
        return f"{CONSOLE_BASE}/ci/bucket?{urlencode(query, quote_via=quote, safe='')}"
