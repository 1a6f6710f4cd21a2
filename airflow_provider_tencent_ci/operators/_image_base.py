"""What every image operator shares: where sources come from, batch vs single, XCom, links, lineage.

Subclasses implement :meth:`_validate` (static and rendered checks), :meth:`_plan` (the items) and
:meth:`_process` (one item -> one JSON document). ``execute`` does the rest: validate the rendered values, plan
(all local checks, no paid request yet), run the items (one in the task thread, many on the bounded pool), persist
the console link, record lineage, and fail after every item was tried unless ``continue_on_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from airflow_provider_tencent_ci.constants import DEFAULT_CONN_ID, IMAGE_MAX_CONCURRENCY_DEFAULT, IfExists
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.links.cos import COSObjectLink, common_folder
from airflow_provider_tencent_ci.operators import _batch
from airflow_provider_tencent_ci.operators._batch import SourceItem, pending
from airflow_provider_tencent_ci.validation import check_non_empty_str

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_tencent_ci.hooks.ci import CIHook


# Template fields every image operator has: where the images come from, and how a batch runs.
SOURCE_TEMPLATE_FIELDS = (
    "bucket",
    "source_key",
    "source_keys",
    "source_prefix",
    "modified_after",
    "modified_before",
    "source_path",
)
BATCH_TEMPLATE_FIELDS = (
    "output_bucket",
    "if_exists",
    "max_concurrency",
    "continue_on_error",
    "tencentcloud_conn_id",
    "region",
)


class ImageOperatorBase(BaseOperator):
    """Shared parameters of the image operators (see the subclasses for the full documentation).

    :param bucket: the COS bucket (``name`` or ``name-appid``) of COS sources and, by default, of COS outputs.
    :param source_key: one source object key.
    :param source_keys: many source object keys (a batch).
    :param source_prefix: every object under this prefix (a batch), optionally filtered by
        ``modified_after`` <= LastModified < ``modified_before`` (datetimes or ISO strings, e.g.
        ``"{{ data_interval_start }}"``; ``None``/``""``/``"None"`` mean no bound).
    :param output_bucket: where COS outputs go (default: ``bucket``).
    :param if_exists: ``"skip"`` (default for batches): no paid call when the output exists and is not older than
        its source (both HEADed); ``"overwrite"`` (default for one source): always process.
    :param max_concurrency: items in flight at once for a batch (thread pool; halved on throttling).
    :param continue_on_error: succeed even if some items failed (they are listed in the result). By default the
        task fails after trying every item and names the failed ones.
    """

    operator_extra_links = (COSObjectLink(),)
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        bucket: str | None = None,
        source_key: str | None = None,
        source_keys: list[str] | None = None,
        source_prefix: str | None = None,
        modified_after: datetime | str | None = None,
        modified_before: datetime | str | None = None,
        output_bucket: str | None = None,
        if_exists: str | None = None,
        max_concurrency: int | str = IMAGE_MAX_CONCURRENCY_DEFAULT,
        continue_on_error: bool | str = False,
        tencentcloud_conn_id: str = DEFAULT_CONN_ID,
        region: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.source_key = source_key
        self.source_keys = source_keys
        self.source_prefix = source_prefix
        self.modified_after = modified_after
        self.modified_before = modified_before
        self.output_bucket = output_bucket
        self.if_exists = if_exists.value if isinstance(if_exists, IfExists) else if_exists
        self.max_concurrency = max_concurrency
        self.continue_on_error = continue_on_error
        self.tencentcloud_conn_id = tencentcloud_conn_id
        self.region = region
        self._lineage_in: list[tuple[str, str]] = []
        self._lineage_out: list[tuple[str, str]] = []

    # -- hooks ------------------------------------------------------------------------------------------------
    @cached_property
    def hook(self) -> CIHook:
        from airflow_provider_tencent_ci.hooks.ci import CIHook

        return CIHook(tencentcloud_conn_id=self.tencentcloud_conn_id, region=self.region)

    def _full_bucket(self, bucket: str) -> str:
        return self.hook.bucket_name(bucket)

    def _region(self) -> str | None:
        return self.region or getattr(self.hook, "region", None)

    def _location(self, bucket: str, key: str) -> str:
        return f"{bucket}.cos.{self._region()}.myqcloud.com/{key}"

    # -- validation helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _given(value: Any) -> bool:
        return value is not None

    def _cos_source_params(self) -> list[str]:
        return [
            n for n in ("source_key", "source_keys", "source_prefix") if self._given(getattr(self, n))
        ]

    def _is_many(self) -> bool:
        """A batch (list result) or one source (dict result); decided by the parameters' shape, not their size."""
        return self.source_keys is not None or self.source_prefix is not None

    def _validate_common(self, rendered: bool) -> None:
        if self.bucket is not None and not pending(self.bucket):
            check_non_empty_str("bucket", self.bucket)
        if self.output_bucket is not None and not pending(self.output_bucket):
            check_non_empty_str("output_bucket", self.output_bucket)
        if self.source_key is not None and not pending(self.source_key):
            check_non_empty_str("source_key", self.source_key)
            if self.source_key.endswith("/"):
                raise ParameterValidationError("source_key", self.source_key, "must be an object key, not a folder")
        if self.source_keys is not None and not pending(self.source_keys):
            if rendered:
                _batch.check_key_list("source_keys", self.source_keys)
            elif (
                isinstance(self.source_keys, (str, bytes))
                or not isinstance(self.source_keys, Sequence)
                or len(self.source_keys) == 0
            ):
                raise ParameterValidationError("source_keys", self.source_keys, "must be a non-empty list of keys")
        prefix = self.source_prefix
        if prefix is not None and not pending(prefix) and not isinstance(prefix, str):
            raise ParameterValidationError("source_prefix", prefix, "must be a string")
        for name in ("modified_after", "modified_before"):
            value = getattr(self, name)
            if value is None or pending(value):
                continue
            if self.source_prefix is None:
                raise ParameterValidationError(name, value, "only applies with source_prefix")
            _batch.parse_time(name, value)
        if rendered:
            after = _batch.parse_time("modified_after", self.modified_after)
            before = _batch.parse_time("modified_before", self.modified_before)
            if after and before and after >= before:
                rule = f"must be later than modified_after={self.modified_after!r}"
                raise ParameterValidationError("modified_before", self.modified_before, rule)
        _batch.check_if_exists(self.if_exists)
        _batch.check_concurrency(self.max_concurrency)
        _batch.check_bool("continue_on_error", self.continue_on_error)

    def _require_one(self, names: Sequence[str], rule: str) -> None:
        given = [n for n in names if self._given(getattr(self, n))]
        if len(given) != 1:
            shown = {n: getattr(self, n) for n in (given or names)}
            raise ParameterValidationError(" / ".join(given or names), shown, rule)

    def _skip_existing(self) -> bool:
        if self.if_exists is None:
            return self._is_many()
        return self.if_exists == IfExists.SKIP.value

    def _cos_items(self) -> list[SourceItem]:
        assert self.bucket is not None
        return _batch.cos_items(
            self.hook,
            self._full_bucket(self.bucket),
            key=self.source_key,
            keys=self.source_keys,
            prefix=self.source_prefix,
            modified_after=_batch.parse_time("modified_after", self.modified_after),
            modified_before=_batch.parse_time("modified_before", self.modified_before),
        )

    def _warm_up(self) -> None:
        """Build the connection and clients in the task thread; the pool threads then share them (the COS SDK
        itself shares one client and requests session across the threads of its multipart uploader)."""
        self.hook.get_conn()

    # -- subclass API -----------------------------------------------------------------------------------------
    def _validate(self, rendered: bool) -> None:
        raise NotImplementedError

    def _plan(self) -> list[SourceItem]:
        raise NotImplementedError

    def _process(self, item: SourceItem) -> dict[str, Any]:
        raise NotImplementedError

    def _cos_outputs(self, docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(bucket, key) of every COS output in the documents (for links and lineage)."""
        outs = []
        for doc in docs:
            for bkey, kkey in (("output_bucket", "output_key"), ("portrait_bucket", "portrait_key"),
                               ("mask_bucket", "mask_key")):
                if doc.get(bkey) and doc.get(kkey):
                    outs.append((doc[bkey], doc[kkey]))
        return outs

    def _local_outputs(self, docs: list[dict[str, Any]]) -> list[str]:
        return [
            doc[k] for doc in docs for k in ("output_path", "portrait_path", "mask_path") if doc.get(k)
        ]

    # -- execution --------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        # An empty link record first: the link lookup after a failure then finds "no link" instead of logging
        # a missing-XCom error.
        COSObjectLink.persist(context)
        self._validate(rendered=True)
        items = self._plan()
        many = self._is_many() or len(items) != 1
        if not items:
            self.log.info("No source matched; nothing to do")
            return [] if many else None
        self._warm_up()
        if many:
            limit = int(self.max_concurrency)
            self.log.info("Processing %d images, at most %d at once", len(items), limit)
            outcome = _batch.run_items(items, self._process, max_concurrency=limit, logger=self.log)
            docs = outcome.results
            summary = {s: sum(1 for d in docs if d.get("status") == s) for s in ("processed", "skipped", "failed")}
            summary.update(total=len(docs), max_concurrency=limit, peak_concurrency=outcome.peak_concurrency)
            self.log.info("Batch summary: %s", summary)
            context["ti"].xcom_push(key="batch_summary", value=summary)
        else:
            try:
                docs = [self._process(items[0])]
            except Exception as exc:
                if not _batch.as_bool(self.continue_on_error):
                    raise
                self.log.warning("Source %s failed and continue_on_error is set: %s", items[0].label, exc)
                docs = [_batch.failure_doc(items[0], exc)]
        ok_docs = [d for d in docs if d.get("status") != "failed"]
        self._record(context, items, ok_docs)
        failed = [d for d in docs if d.get("status") == "failed"]
        if failed and not _batch.as_bool(self.continue_on_error):
            context["ti"].xcom_push(key="failed_items", value=failed)
            listing = "\n".join(f"  {d['source']}: {d.get('error')}" for d in failed)
            raise AirflowException(f"{len(failed)} of {len(docs)} images failed:\n{listing}")
        return docs if many else docs[0]

    def _record(self, context: Context, items: list[SourceItem], docs: list[dict[str, Any]]) -> None:
        """Console link (persisted now, rendered by Airflow at the end) and lineage datasets."""
        cos_outs = self._cos_outputs(docs)
        if cos_outs:
            bucket = cos_outs[0][0]
            keys = [k for b, k in cos_outs if b == bucket]
            key = keys[0] if len(keys) == 1 else common_folder(keys)
            COSObjectLink.persist(context, bucket=bucket, key=key, region=self._region())
        self._lineage_in = [i.lineage() for i in items]
        self._lineage_out = [(f"cos://{b}", k) for b, k in cos_outs]
        self._lineage_out += [("file", p) for p in self._local_outputs(docs)]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input and output datasets (``cos://bucket`` + key; ``file`` + path). None without OpenLineage."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        return OperatorLineage(
            inputs=[Dataset(namespace=ns, name=name) for ns, name in self._lineage_in],
            outputs=[Dataset(namespace=ns, name=name) for ns, name in self._lineage_out],
        )

    def lineage_datasets(self) -> dict[str, list[tuple[str, str]]]:
        """The (namespace, name) pairs reported to OpenLineage by the last ``execute``."""
        return {"inputs": list(self._lineage_in), "outputs": list(self._lineage_out)}
