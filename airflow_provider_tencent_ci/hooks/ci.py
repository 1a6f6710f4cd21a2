"""CIHook: COS objects, CI image processing and CI jobs for one ``tencentcloud`` connection.

The calls live by service area: :mod:`.cos_objects`, :mod:`.ci_image`, :mod:`.ci_jobs` (sync and async job calls
from one request builder). CIHook composes them; the names below stay importable from here (README, user DAGs).
"""

from __future__ import annotations

from airflow_provider_tencent_ci.common.xml import parse_xml
from airflow_provider_tencent_ci.hooks.ci_image import CIImageHook, CIProcessResponse
from airflow_provider_tencent_ci.hooks.ci_jobs import CIJobsHook, JobsPage, JobsQuery
from airflow_provider_tencent_ci.hooks.cos_objects import CosObjectsHook

__all__ = ["CIHook", "CIProcessResponse", "JobsPage", "JobsQuery", "parse_xml"]


class CIHook(CosObjectsHook, CIImageHook, CIJobsHook):
    """COS objects, CI image processing and CI jobs. See ARCHITECTURE.md for the contract.

    :param tencentcloud_conn_id: the ``tencentcloud`` connection.
    :param region: overrides the connection's ``region`` extra.
    :param job_query_batch_size: how many job ids one DescribeJobs request names (1..100).
    """

    hook_name = "Tencent Cloud"
