"""What every image operator shares: where sources come from, batch vs single, XCom, links, lineage.

Subclasses declare ``params_spec`` (their parameters, :mod:`airflow_provider_tencent_ci.params`) and implement
:meth:`_sources` (the items), :meth:`_outputs` (where one item's outputs go) and :meth:`_process` (one item -> one
JSON document). ``execute`` does the rest: validate the rendered values, plan (all local checks, outputs compared with
the sources and each other as the service will store them, no paid request yet), run the items (one in the task
thread, many on the bounded pool), persist the console link, record lineage, and fail after every item was tried
unless ``continue_on_error``. Subclasses that can stream or list their outputs also describe them
(:meth:`_streams_listing`, :meth:`_cos_output_prefixes`, :meth:`_local_output_templates`)
for large batches: see README "Image operators" and :mod:`._manifest`.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.exceptions import AirflowException

from airflow_provider_tencent_ci.common.times import aware_time_param
from airflow_provider_tencent_ci.constants import (
    DEFAULT_CONN_ID,
    IMAGE_MAX_CONCURRENCY_DEFAULT,
    OUTPUT_SOURCE_METADATA,
    IfExists,
)
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.links.cos import COSObjectLink, common_folder
from airflow_provider_tencent_ci.operators import _batch
from airflow_provider_tencent_ci.operators._batch import SourceItem
from airflow_provider_tencent_ci.operators._manifest import (
    PLANNED_BATCH_MAX_ITEMS,
    BatchCollector,
    ManifestPlace,
    PreviousOutputs,
    manifest_key,
    manifest_root,
    recorded_outputs,
    task_manifests,
)
from airflow_provider_tencent_ci.operators.base import CI_HOOK, TencentCloudBaseOperator, openlineage_facets
from airflow_provider_tencent_ci.params import ParamSpec, Values
from airflow_provider_tencent_ci.params.image import IMAGE_SPEC, is_batch

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_tencent_ci.hooks.ci import CIHook  # noqa: F401  (the generic argument below)


MANIFEST_CONTENT_TYPE = "application/x-ndjson"


def _folder(prefix: str) -> str:
    """The folder part of a key prefix (``out/2024/img_`` -> ``out/2024``)."""
    return prefix.rsplit("/", 1)[0] if "/" in prefix else ""


@dataclass(frozen=True)
class Output:
    """Where one output of one item really goes: ``role`` is its parameter; ``target`` the COS key as the service
    will store it (normalised) or the local path (checked to stay inside its folder)."""

    role: str
    kind: str  # "cos" | "local"
    bucket: str | None
    target: str


class ImageOperatorBase(TencentCloudBaseOperator["CIHook"]):
    """Shared parameters of the image operators (see the subclasses for the full documentation).

    :param bucket: the COS bucket (``name`` or ``name-appid``) of COS sources and, by default, of COS outputs.
    :param source_key: one source object key.
    :param source_keys: many source object keys (a batch).
    :param source_prefix: every object under this prefix (a batch), optionally filtered by
        ``modified_after`` <= LastModified < ``modified_before`` (datetimes or ISO strings, e.g.
        ``"{{ data_interval_start }}"``; ``None``/``""``/``"None"`` mean no bound).
    :param output_bucket: where COS outputs go (default: ``bucket``).
    :param if_exists: ``"skip"`` (default for batches): no paid call when the output exists and is not older than
        its source (HEADed; a batch of more than ``PLANNED_BATCH_MAX_ITEMS`` lists the output prefix once
        instead); ``"overwrite"`` (default for one source): always process.
    :param max_concurrency: items in flight at once for a batch (thread pool; halved on throttling).
    :param continue_on_error: succeed even if some items failed (they are listed in the result). By default the
        task fails after trying every item and names the failed ones.
    :param tencentcloud_conn_id: the ``tencentcloud`` connection; ``region``: default the connection's.
    """

    hook_class = CI_HOOK
    params_spec: ClassVar[ParamSpec] = IMAGE_SPEC
    # Parameters whose list value makes a batch (besides source_keys/source_prefix).
    list_params: ClassVar[tuple[str, ...]] = ()
    operator_extra_links = (COSObjectLink(),)
    ui_color = "#e8f4ff"
    list_page_size = 1000  # ListObjects MaxKeys (the service's maximum) for source and output listings

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
        super().__init__(tencentcloud_conn_id=tencentcloud_conn_id, region=region, **kwargs)
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
        self._checked: dict[str, Any] = {}
        self._lineage_in: list[tuple[str, str]] = []
        self._lineage_out: list[tuple[str, str]] = []
        self._listed_outputs: _batch.OutputListing | None = None
        self._previous_outputs: PreviousOutputs | None = None

    # -- buckets and places -----------------------------------------------------------------------------------
    def _full_bucket(self, bucket: str) -> str:
        return self.hook.bucket_name(bucket)

    def _out_bucket(self) -> str:
        return self._full_bucket(self.output_bucket or self.bucket or "")

    def _region(self) -> str | None:
        return self.region or self.hook.region

    def _location(self, bucket: str, key: str) -> str:
        return f"{bucket}.cos.{self._region()}.myqcloud.com/{key}"

    # -- validation -------------------------------------------------------------------------------------------
    def _validate(self, rendered: bool) -> Values:
        """Check the described parameters (see ``params_spec``); after rendering, keep the normalised values."""
        values = self.validate_params(rendered=rendered)
        if rendered:
            self._checked = values.checked
        return values

    def _is_many(self) -> bool:
        """A batch (list result) or one source (dict result); decided by the parameters' shape, not their size."""
        return is_batch(Values(self.param_values(), {}), self.list_params)

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
            modified_after=aware_time_param("modified_after", self.modified_after),
            modified_before=aware_time_param("modified_before", self.modified_before),
        )

    def _existing_output(self, param: str, bucket: str, key: str, item: SourceItem) -> dict[str, Any] | None:
        """A COS output's headers before the paid call; one recorded as another source's fails this item.

        Every COS output carries its source in ``x-cos-meta-source`` (written with the object, or, for an object CI
        writes, tagged right after). In a large batch the rerun listing answers "does not exist" without a HEAD;
        a listing carries no metadata, so an output it holds is HEADed for its owner before it is skipped or
        overwritten (a fresh output another source made must fail this item, not count as done), unless this task's
        last manifest records it as this item's, with the ETag listed (:class:`._manifest.PreviousOutputs`)."""
        listing = self._listed_outputs
        known, listed = listing.lookup(bucket, key) if listing is not None else (False, None)
        if known and listed is None:
            return None
        previous = self._previous_outputs
        if known and previous is not None and previous.vouches(bucket, key, (listed or {}).get("ETag"), item.label):
            return listed  # this task's own output, as its last manifest recorded it: no HEAD for the owner
        head = self.hook.head_object(bucket, key)
        _batch.check_output_owner(param, key, head, item)
        return head

    @staticmethod
    def _source_metadata(item: SourceItem) -> dict[str, str]:
        return {OUTPUT_SOURCE_METADATA: _batch.source_tag(item)}

    def _warm_up(self) -> None:
        """Build the connection and clients in the task thread; the pool threads then share them (the COS SDK
        itself shares one client and requests session across the threads of its multipart uploader)."""
        self.hook.get_conn()

    # -- planning ---------------------------------------------------------------------------------------------
    def _plan(self) -> list[SourceItem]:
        """The items, after every local check of where their outputs go (no paid request yet)."""
        return self._check_outputs(self._sources())

    def _check_outputs(self, items: list[SourceItem]) -> list[SourceItem]:
        """Outputs never overwrite a source or each other, compared as the service will store them."""
        planned = {item: self._outputs(item) for item in items}
        if len(items) > 1:  # a batch never processes its own outputs (an output folder inside the source prefix)
            produced = {(o.bucket, o.target): item for item, outs in planned.items() for o in outs if o.kind == "cos"}
            items = [i for i in items if produced.get((i.bucket, i.key or ""), i) == i]
        sources = {(i.bucket, i.key or ""): i for i in items if i.kind == "cos"}
        seen: dict[tuple[str, str | None, str], tuple[str, SourceItem]] = {}
        overwrites: list[tuple[Output, SourceItem]] = []
        for item in items:
            for out in planned[item]:
                ident = (out.kind, out.bucket, out.target)
                if ident in seen:
                    role, other = seen[ident]
                    if role == out.role:
                        rule = "two sources map to the same output; use {key} or {name}"
                    else:
                        rule = f"is also the {role} of {other.label}: two outputs may not share one object or file"
                    raise ParameterValidationError(out.role, out.target, rule)
                seen[ident] = (out.role, item)
                if out.kind == "cos" and (out.bucket, out.target) in sources:
                    overwrites.append((out, sources[(out.bucket, out.target)]))
        if overwrites:
            out = overwrites[0][0]
            named = ", ".join(f"{o.role} of {src.label}" for o, src in overwrites[:10])
            more = f" and {len(overwrites) - 10} more" if len(overwrites) > 10 else ""
            raise ParameterValidationError(
                out.role, getattr(self, out.role, out.target), f"would overwrite its source: {named}{more}"
            )
        return items

    # -- subclass API -----------------------------------------------------------------------------------------
    def _sources(self) -> list[SourceItem]:
        raise NotImplementedError

    def _outputs(self, item: SourceItem) -> list[Output]:
        raise NotImplementedError

    def _process(self, item: SourceItem) -> dict[str, Any]:
        raise NotImplementedError

    def _cos_outputs(self, docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(bucket, key) of every COS output in the documents (for links and lineage)."""
        outs = []
        for doc in docs:
            for bkey, kkey in (
                ("output_bucket", "output_key"),
                ("portrait_bucket", "portrait_key"),
                ("mask_bucket", "mask_key"),
            ):
                if doc.get(bkey) and doc.get(kkey):
                    outs.append((doc[bkey], doc[kkey]))
        return outs

    def _local_outputs(self, docs: list[dict[str, Any]]) -> list[str]:
        return [doc[k] for doc in docs for k in ("output_path", "portrait_path", "mask_path") if doc.get(k)]

    # -- large batches ----------------------------------------------------------------------------------------
    def _streams_listing(self) -> bool:
        """The sources are a ``source_prefix`` listing (which a large batch consumes while it is fetched)."""
        return self.source_prefix is not None and self.source_key is None and self.source_keys is None

    def _cos_output_prefixes(self) -> list[tuple[str, str]]:
        """(bucket, fixed key prefix as stored) of every COS output template whose existence a rerun checks."""
        return []

    def _local_output_templates(self) -> list[str]:
        return []

    def _manifest_place(self, context: Context) -> ManifestPlace | None:
        ti = context["ti"]
        run_id = context.get("run_id") or getattr(ti, "run_id", None) or "manual"
        ident = (self.dag_id, self.task_id, str(run_id), getattr(ti, "map_index", None))
        for bucket, prefix in self._cos_output_prefixes():
            return ManifestPlace("cos", bucket, manifest_key(_folder(prefix), *ident))
        for template in self._local_output_templates():
            return ManifestPlace("local", None, os.path.join(_batch.template_base(template), manifest_key("", *ident)))
        return None

    def _overlaps_sources(self, bucket: str, prefix: str) -> bool:
        return any(
            b == bucket and (p.startswith(prefix) or prefix.startswith(p)) for b, p in self._cos_output_prefixes()
        )

    def _batch_items(self) -> tuple[Iterable[SourceItem], bool, bool]:
        """(items, large, streamed). A listing is read up to ``PLANNED_BATCH_MAX_ITEMS + 1`` sources first: a small
        batch is planned in full as before; a large one streams the rest unless its outputs may fall inside the
        listed prefix (then every source is listed before the plan, so no output can overwrite a source)."""
        if not self._streams_listing():
            items = self._plan()
            return items, len(items) > PLANNED_BATCH_MAX_ITEMS, False
        assert self.bucket is not None
        bucket = self._full_bucket(self.bucket)
        exclude = None
        outs = self._cos_output_prefixes()
        if outs and outs[0][0] == bucket:
            exclude = manifest_root(_folder(outs[0][1]))
        listing = _batch.prefix_items(
            self.hook,
            bucket,
            self.source_prefix or "",
            modified_after=aware_time_param("modified_after", self.modified_after),
            modified_before=aware_time_param("modified_before", self.modified_before),
            exclude_prefix=exclude,
            page_size=self.list_page_size,
        )
        head = list(islice(listing, PLANNED_BATCH_MAX_ITEMS + 1))
        if len(head) <= PLANNED_BATCH_MAX_ITEMS:
            return self._check_outputs(head), False, False
        if self._overlaps_sources(bucket, self.source_prefix or ""):
            return self._check_outputs([*head, *listing]), True, False
        return chain(head, listing), True, True

    def _process_unique(self, seen: set[tuple[str, str | None, str]], lock: threading.Lock) -> Any:
        """``_process`` for a streamed batch: an output already claimed by an earlier source fails this item
        (checked before its paid call; the plan of a listed batch checks all of them before any paid call)."""

        def process(item: SourceItem) -> dict[str, Any]:
            outputs = self._outputs(item)
            with lock:
                for out in outputs:
                    if (out.kind, out.bucket, out.target) in seen:
                        rule = "two sources map to the same output; use {key} or {name}"
                        raise ParameterValidationError(out.role, out.target, rule)
                seen.update((o.kind, o.bucket, o.target) for o in outputs)
            return self._process(item)

        return process

    # -- execution --------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        # An empty link record first: the link lookup after a failure then finds "no link" instead of logging
        # a missing-XCom error.
        COSObjectLink.persist(context)
        self._validate(rendered=True)
        continue_on_error = bool(self._checked.get("continue_on_error", False))
        if not self._is_many():
            items = self._plan()
            if len(items) == 1:
                return self._execute_one(context, items[0], continue_on_error)
            return self._execute_batch(context, items, len(items) > PLANNED_BATCH_MAX_ITEMS, False, continue_on_error)
        batch, large, streamed = self._batch_items()
        return self._execute_batch(context, batch, large, streamed, continue_on_error)

    def _execute_one(self, context: Context, item: SourceItem, continue_on_error: bool) -> Any:
        self._warm_up()
        try:
            doc = self._process(item)
        except Exception as exc:
            if not continue_on_error:
                raise
            self.log.warning("Source %s failed and continue_on_error is set: %s", item.label, exc)
            doc = _batch.failure_doc(item, exc)
        self._record(context, [item], [doc] if doc.get("status") != "failed" else [])
        return doc

    def _execute_batch(
        self, context: Context, items: Iterable[SourceItem], large: bool, streamed: bool, continue_on_error: bool
    ) -> Any:
        """Run the items on the pool. ``large`` (more than ``PLANNED_BATCH_MAX_ITEMS``): a rerun lists the outputs
        once instead of a HEAD per item. Up to ``ITEM_DOCS_MAX_ITEMS`` items (documents within
        ``ITEM_DOCS_MAX_BYTES``) return their per-item documents as before; a larger batch writes them to the
        manifest and returns the summary."""
        if isinstance(items, list) and not items:
            self.log.info("No source matched; nothing to do")
            return []
        self._warm_up()
        limit = int(self._checked.get("max_concurrency", IMAGE_MAX_CONCURRENCY_DEFAULT))
        if large:  # one listing instead of a HEAD per output; this task's last manifest vouches for its outputs
            self._listed_outputs = self._list_outputs()  # filled while the items run
            self._previous_outputs = self._previous_manifest(context)
        process = self._process_unique(set(), threading.Lock()) if streamed else self._process
        count = f"{len(items)}" if isinstance(items, list) else "the listed"
        self.log.info("Processing %s images, at most %d at once", count, limit)
        collector = BatchCollector()
        try:
            try:
                outcome = _batch.run_items(
                    items, process, max_concurrency=limit, on_result=collector.add, logger=self.log
                )
            except BaseException:
                if collector.total:  # the listing failed part-way: record what was done
                    try:
                        self._write_manifest(context, collector)
                    except Exception as exc:  # the original error matters more
                        self.log.warning("Could not write the manifest of the %d items done: %s", collector.total, exc)
                raise
            docs = collector.item_docs()
            # A large batch always writes its manifest: its rerun's proof of which listed outputs are its own.
            place = self._write_manifest(context, collector) if docs is None or large else None
            summary: dict[str, Any] = {
                **collector.counts,
                "total": collector.total,
                "max_concurrency": limit,
                "peak_concurrency": outcome.peak_concurrency,
            }
            if place is not None:
                summary["manifest"] = place.label
            self.log.info("Batch summary: %s", summary)
            context["ti"].xcom_push(key="batch_summary", value=summary)
            listed = items if isinstance(items, list) else None  # a streamed listing is consumed by now
            if docs is not None:
                self._record(context, listed or [], [d for d in docs if d.get("status") != "failed"])
            else:
                self._record_large(context)
            self._lineage_in = self._lineage_inputs(listed)
            failed = collector.failed_docs()
            if failed and not continue_on_error:
                context["ti"].xcom_push(key="failed_items", value=failed)
                listing = "\n".join(f"  {d['source']}: {d.get('error')}" for d in failed)
                where = f"\n(first {len(failed)}; every item is in {place.label})" if place else ""
                total = f"{collector.counts['failed']} of {collector.total}"
                raise AirflowException(f"{total} images failed:\n{listing}{where}")
            if docs is not None:
                return docs
            return collector.summary(place, max_concurrency=limit, peak_concurrency=outcome.peak_concurrency)
        finally:
            collector.close()
            if self._listed_outputs is not None:
                self._listed_outputs.close()
            self._listed_outputs = None
            self._previous_outputs = None

    def _list_outputs(self) -> _batch.OutputListing | None:
        """One listing of the output prefixes (in the output bucket) for a rerun's "already done" check."""
        outs = self._cos_output_prefixes()
        if not outs:
            return None
        bucket = outs[0][0]
        listing = _batch.OutputListing(bucket, [p for b, p in outs if b == bucket])
        return listing.start(self.hook, page_size=self.list_page_size)

    def _previous_manifest(self, context: Context) -> PreviousOutputs | None:
        """The outputs this task's newest earlier manifest in COS records (read on a thread as the batch starts)."""
        place = self._manifest_place(context)
        if place is None or place.kind != "cos" or place.bucket is None:
            return None
        bucket = place.bucket
        ti = context["ti"]
        folder = _folder(next(p for b, p in self._cos_output_prefixes() if b == bucket))
        prefix, matches = task_manifests(folder, self.dag_id, self.task_id, getattr(ti, "map_index", None))

        def load() -> dict[tuple[str, str], tuple[str, str]]:
            try:
                mine = [o for o in self.hook.list_objects(bucket, prefix=prefix) if matches(o["Key"])]
                if not mine:
                    return {}
                newest = max(mine, key=lambda o: o.get("LastModified") or datetime.min.replace(tzinfo=timezone.utc))
                with tempfile.TemporaryDirectory(prefix="tencent-ci-manifest-") as tmp:
                    path = os.path.join(tmp, "manifest.jsonl")
                    self.hook.download_file(bucket, newest["Key"], path)
                    with open(path, "rb") as fh:
                        outputs = recorded_outputs(fh)
                self.log.info("Rerun: %d outputs recorded by %s", len(outputs), f"cos://{bucket}/{newest['Key']}")
                return outputs
            except Exception as exc:  # the manifest only saves requests: each listed output is HEADed instead
                self.log.warning("Could not read this task's last manifest (%s); existing outputs are HEADed", exc)
                return {}

        return PreviousOutputs(load)

    def _write_manifest(self, context: Context, collector: BatchCollector) -> ManifestPlace | None:
        place = self._manifest_place(context)
        if place is None:
            return None
        if place.kind == "cos":
            assert place.bucket is not None
            self.hook.put_object(place.bucket, place.target, collector.lines(), content_type=MANIFEST_CONTENT_TYPE)
        else:
            collector.write_local(place.target)
        self.log.info("Manifest of %d items: %s", collector.total, place.label)
        return place

    def _lineage_inputs(self, items: list[SourceItem] | None) -> list[tuple[str, str]]:
        """One dataset per source, or the listed prefix for a streamed batch (its items are not kept)."""
        if items is not None:
            return [i.lineage() for i in items]
        return [(f"cos://{self._full_bucket(self.bucket or '')}", self.source_prefix or "")]

    def _record_large(self, context: Context) -> None:
        """A batch whose documents went to the manifest: link and lineage name the output folders."""
        outs = self._cos_output_prefixes()
        if outs:
            bucket, prefix = outs[0]
            folder = _folder(prefix)
            COSObjectLink.persist(
                context,
                bucket=bucket,
                key=f"{folder}/" if folder else "",
                region=self._region(),
                console_base_url=self.hook.config.console_base_url,  # the emulator's object view, when it has one
            )
        self._lineage_out = [(f"cos://{b}", p) for b, p in outs]
        self._lineage_out += [("file", _batch.template_base(t)) for t in self._local_output_templates()]

    def _record(self, context: Context, items: list[SourceItem], docs: list[dict[str, Any]]) -> None:
        """Console link (persisted now, rendered by Airflow at the end) and lineage datasets."""
        cos_outs = self._cos_outputs(docs)
        if cos_outs:
            bucket = cos_outs[0][0]
            keys = [k for b, k in cos_outs if b == bucket]
            key = keys[0] if len(keys) == 1 else common_folder(keys)
            view = self.hook.config.console_base_url  # the emulator's object view, when the connection has one
            COSObjectLink.persist(context, bucket=bucket, key=key, region=self._region(), console_base_url=view)
        self._lineage_in = [i.lineage() for i in items]
        self._lineage_out = [(f"cos://{b}", k) for b, k in cos_outs]
        self._lineage_out += [("file", p) for p in self._local_outputs(docs)]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input and output datasets (``cos://bucket`` + key; ``file`` + path). None without OpenLineage."""
        return openlineage_facets(self._lineage_in, self._lineage_out)

    def lineage_datasets(self) -> dict[str, list[tuple[str, str]]]:
        """The (namespace, name) pairs reported to OpenLineage by the last ``execute``."""
        return {"inputs": list(self._lineage_in), "outputs": list(self._lineage_out)}
