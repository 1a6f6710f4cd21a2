"""Extra links to the Tencent Cloud console, or to the emulator's object view.

Airflow 3 stores each link's final URL in XCom (key ``_link_<ClassName>``) when the task finishes: the task runner
calls ``get_link`` on the worker. ``get_link`` therefore reads what the operator persisted during ``execute`` (a
small dict under :attr:`TencentConsoleLink.key`), as the Amazon/Google providers do, and formats the URL from it.

When the connection has the ``console_base_url`` extra (set by the emulator's ``connection_extras()``: its
read-only view, ``<url>/_emulator/view/<token>``), the operator persists it with the fields and the links point
into that view (``/objects/<bucket>/<key>``, ``/objects/<bucket>/?prefix=<folder>``, ``/jobs/<bucket>/<job_id>``,
the routes of ``emulator/control.py``). The URL holds the emulator's control token: it is only ever an emulator's.

To add a link, subclass :class:`TencentConsoleLink`, set ``name``, ``key`` and ``format_url``.
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
    def persist(cls, context: Context, *, console_base_url: str | None = None, **fields: Any) -> None:
        """Store the URL fields for this task instance (call from ``execute``).

        :param console_base_url: the connection's ``console_base_url`` (the emulator's object view), if any.
        """
        if console_base_url:
            fields["console_base_url"] = console_base_url
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
        view = fields.get("console_base_url")
        if view:  # the emulator: the object itself, or the listing of a batch's shared folder
            objects = f"{view}/objects/{quote(bucket, safe='')}/"
            if key and not key.endswith("/"):
                return objects + quote(key, safe="/")
            return objects + (f"?{urlencode({'prefix': key}, quote_via=quote, safe='')}" if key else "")
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
    def format_url(  # type: ignore[override]
        cls, *, bucket: str, job_id: str, region: str | None = None, console_base_url: str | None = None, **_: Any
    ) -> str:
        if console_base_url:  # the emulator's job page (state, times, links to the input and output objects)
            return f"{console_base_url}/jobs/{quote(bucket, safe='')}/{quote(job_id, safe='')}"
        query: dict[str, str] = {"bucket": bucket}
        if region:
            query["region"] = region
        query["type"] = "jobmanage"
        query["jobId"] = job_id
        return f"{CONSOLE_BASE}/ci/bucket?{urlencode(query, quote_via=quote, safe='')}"
