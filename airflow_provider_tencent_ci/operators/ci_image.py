"""CI image AI operators: portrait matting, goods matting, face beauty.

The three share :class:`BaseCIImageOperator`; each differs only in its ``ci-process`` and its own parameters.

Modes (``constants.ImageMode``):

- ``cloud`` (default): the source is already in COS; ``POST /<key>?image_process`` writes the result to
  ``output_key`` (in ``output_bucket``, default ``bucket``). Sources: ``source_key``, ``source_keys`` or
  ``source_prefix`` (+ ``modified_after``/``modified_before``).
- ``upload``: ``source_path`` (a local file, a list of files or a directory) is uploaded to ``upload_key`` with
  ``Pic-Operations``; the original and the result (``output_key``) are both stored.
- ``download``: the result comes back in the response body (source from COS, or from ``detect_url``) and is
  streamed to ``output_path`` (local; temp file + rename) or to ``output_key`` (through a local temp file).

``output_key``, ``output_path`` and ``upload_key`` are templates: Jinja first, then the per-item placeholders
``{key}``, ``{name}``, ``{stem}``, ``{ext}``, ``{dir}`` (see :mod:`._batch`). Reruns are cheap: with
``if_exists="skip"`` (the default for batches) an output that exists and is not older than its source is not
paid for again.

Ownership: every COS output records its source in ``x-cos-meta-source``. Download mode writes it with the object;
in cloud and upload mode CI writes the result, so it is tagged right after by a copy onto itself conditional on
the ETag CI reported (:meth:`BaseCIImageOperator._tag_output`). An existing output made from another source fails
the item before the paid call (README "Outputs never overwrite their sources or each other", with what remains
undetected).

XCom: one document per item (a dict for one source, a list for a batch of at most ``ITEM_DOCS_MAX_ITEMS``):
``source``, ``status`` (``processed``/``skipped``/``failed``), ``output_bucket``/``output_key``/``location`` or
``output_path``, ``etag``, ``size``, ``request_id`` (and ``source_tagged: false`` when the tag of a result kept
failing). Never image bytes. A larger batch returns a summary and writes the documents to a JSON-lines manifest
beside the outputs (:mod:`._manifest`).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_tencent_ci.constants import CIProcess, ImageMode
from airflow_provider_tencent_ci.exceptions import (
    ParameterValidationError,
    TencentCloudError,
    TencentCloudPreconditionFailedError,
)
from airflow_provider_tencent_ci.operators import _batch
from airflow_provider_tencent_ci.operators._batch import SourceItem
from airflow_provider_tencent_ci.operators._image_base import ImageOperatorBase, Output
from airflow_provider_tencent_ci.operators.base import tencentcloud_template_fields
from airflow_provider_tencent_ci.params import ParamSpec
from airflow_provider_tencent_ci.params.image import (
    CI_IMAGE_SPEC,
    FACE_BEAUTY_SPEC,
    GOODS_MATTING_SPEC,
    PORTRAIT_MATTING_SPEC,
)


def _strip_etag(etag: Any) -> str | None:
    return str(etag).strip('"') if etag else None


def _result_content_type(key: str) -> str | None:
    """The Content-Type a copy with ``Replaced`` metadata must send again (cn 436/10881: the request's headers
    become the object's): the type of the output key's extension, as the operator's users name their results."""
    return mimetypes.guess_type(key)[0]


def _first_result(upload_result: dict[str, Any]) -> dict[str, Any]:
    """The first ``ProcessResults/Object`` (the hook always returns them as a list)."""
    results = upload_result.get("ProcessResults") or []
    return results[0] if results else {}


class BaseCIImageOperator(ImageOperatorBase):
    """Run one CI image process on one or many images. See the module documentation for modes and XCom.

    :param mode: ``cloud`` | ``upload`` | ``download``.
    :param source_path: ``upload`` mode: a local file, a list of files, or a directory (its files).
    :param upload_key: ``upload`` mode: where the original is stored (template with placeholders).
    :param detect_url: ``download`` mode: a public image URL (or a list) to process instead of a COS object;
        ``bucket`` still names the bucket whose CI endpoint does the work.
    :param output_key: COS key of the result (template with placeholders); required for ``cloud``/``upload``.
    :param output_path: ``download`` mode: local path of the result (template with placeholders).
    """

    ci_process: ClassVar[CIProcess]
    params_spec: ClassVar[ParamSpec] = CI_IMAGE_SPEC
    list_params = ("source_path", "detect_url")
    template_fields: Sequence[str] = tencentcloud_template_fields(*CI_IMAGE_SPEC.template_fields)

    def __init__(
        self,
        *,
        mode: str | ImageMode = ImageMode.CLOUD,
        source_path: str | list[str] | None = None,
        upload_key: str | None = None,
        detect_url: str | list[str] | None = None,
        output_key: str | None = None,
        output_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = mode.value if isinstance(mode, ImageMode) else mode
        self.source_path = source_path
        self.upload_key = upload_key
        self.detect_url = detect_url
        self.output_key = output_key
        self.output_path = output_path

    # -- planning ---------------------------------------------------------------------------------------------
    def _sources(self) -> list[SourceItem]:
        if ImageMode(self.mode) == ImageMode.UPLOAD:
            return _batch.local_items("source_path", self.source_path or [])
        if self.detect_url is not None:
            urls = [self.detect_url] if isinstance(self.detect_url, str) else list(self.detect_url)
            bucket = self._full_bucket(self.bucket or "")
            return [SourceItem("url", bucket=bucket, url=u) for u in dict.fromkeys(urls)]
        return self._cos_items()

    def _outputs(self, item: SourceItem) -> list[Output]:
        outputs = []
        if self.upload_key is not None:
            key = _batch.cos_key(_batch.fill_template(self.upload_key, item))
            outputs.append(Output("upload_key", "cos", self._full_bucket(self.bucket or ""), key))
        if self.output_key is not None:
            out_key = self._output_key(item)
            if ImageMode(self.mode) == ImageMode.DOWNLOAD:  # written by PutObject
                key = _batch.cos_key(out_key)
            else:  # a Pic-Operations fileid, resolved as CI does
                key = _batch.fileid_key(self._fileid(out_key), item.key or "")
            outputs.append(Output("output_key", "cos", self._out_bucket(), key))
        if self.output_path is not None:
            path = _batch.contained_path("output_path", self.output_path, item)
            outputs.append(Output("output_path", "local", None, path))
        return outputs

    def _streams_listing(self) -> bool:
        return ImageMode(self.mode) != ImageMode.UPLOAD and self.detect_url is None and super()._streams_listing()

    def _cos_output_prefixes(self) -> list[tuple[str, str]]:
        if self.output_key is None:
            return []
        head = self.output_key.split("{", 1)[0]
        # As ``_outputs`` stores them: PutObject drops one leading "/", a Pic-Operations fileid is absolute.
        prefix = _batch.cos_key(head) if ImageMode(self.mode) == ImageMode.DOWNLOAD else head.lstrip("/")
        return [(self._out_bucket(), prefix)]

    def _local_output_templates(self) -> list[str]:
        return [self.output_path] if self.output_path is not None else []

    def _output_key(self, item: SourceItem) -> str:
        return _batch.fill_template(self.output_key or "", item)

    @staticmethod
    def _fileid(out_key: str) -> str:
        # A fileid without a leading "/" is relative to the source's folder: always send an absolute one.
        return "/" + out_key.lstrip("/")

    def _rule(self) -> str:
        params = self.params_spec.wire(self._checked)
        return "&".join([f"ci-process={self.ci_process.value}", *(f"{k}={v}" for k, v in params.items())])

    def _pic_operations(self, out_key: str) -> dict[str, Any]:
        rule: dict[str, Any] = {"fileid": self._fileid(out_key), "rule": self._rule()}
        if self.output_bucket:
            rule["bucket"] = self._out_bucket()
        return {"is_pic_info": 1, "rules": [rule]}

    # -- one item ---------------------------------------------------------------------------------------------
    def _process(self, item: SourceItem) -> dict[str, Any]:
        mode = ImageMode(self.mode)
        doc: dict[str, Any] = {"source": item.label, "process": self.ci_process.value, "mode": mode.value}
        if item.kind == "cos":
            doc.update(source_bucket=item.bucket, source_key=item.key)
        if mode == ImageMode.DOWNLOAD:
            return self._download(item, doc)
        out_bucket = self._out_bucket()
        out_key = self._output_key(item)
        stored_key = self._fileid(out_key).lstrip("/")
        doc.update(output_bucket=out_bucket, output_key=stored_key)
        head = self._existing_output("output_key", out_bucket, stored_key, item)
        if self._skip_existing() and _batch.cos_output_fresh(self.hook, head, item) is not None:
            return self._skipped(doc, head or {})
        if mode == ImageMode.CLOUD:
            result = self.hook.image_process(item.bucket or "", item.key or "", self._pic_operations(out_key))
        else:
            upload_key = _batch.cos_key(_batch.fill_template(self.upload_key or "", item))
            bucket = self._full_bucket(self.bucket or "")
            ops = self._pic_operations(out_key)
            # The original is an output too: one another source stored there fails the item before the upload
            # (which is the paid call), and this one records its source with the object.
            self._existing_output("upload_key", bucket, upload_key, item)
            result = self.hook.put_object_with_pic_operations(
                bucket, upload_key, item.path or "", ops, metadata=self._source_metadata(item)
            )
            original = result.get("OriginalInfo") or {}
            doc.update(original_bucket=bucket, original_key=upload_key, original_etag=_strip_etag(original.get("ETag")))
        obj = _first_result(result)
        size = obj.get("Size")
        etag = _strip_etag(obj.get("ETag"))
        doc.update(
            status="processed",
            location=obj.get("Location") or self._location(out_bucket, stored_key),
            etag=etag,
            size=int(size) if size not in (None, "") else None,
            request_id=result.get("RequestId"),
        )
        self._tag_output(item, out_bucket, stored_key, etag, doc)
        return doc

    def _tag_output(self, item: SourceItem, bucket: str, key: str, etag: str | None, doc: dict[str, Any]) -> None:
        """Record the item as the owner of the output CI just wrote (CI writes it without user metadata).

        A copy onto itself with ``x-cos-meta-source``, conditional on the ETag CI reported for the result
        (``ProcessResults/Object/ETag``, shared/seeds/ci-ai-portrait-matting.txt "The content of the Object node";
        PUT Object - Copy's ``x-cos-copy-source-If-Match``, cn 436/10881). 412: another writer replaced the output
        between CI's write and this tag, so this item's result is gone: the item fails naming both sources (final:
        rerunning would pay again for an output the other source keeps taking). A transient failure of the tag
        (after the hook's retries) leaves a correct but untagged output: logged, the item stays processed (never
        re-queued: that would pay twice). Without a reported ETag the tag is unconditional."""
        try:
            self.hook.replace_metadata(
                bucket, key, self._source_metadata(item), content_type=_result_content_type(key), if_match=etag
            )
        except TencentCloudPreconditionFailedError as exc:
            other = _batch.output_owner(self.hook.head_object(bucket, key))
            by = f"by the output of {other}" if other else "by another writer"
            rule = (
                f"was replaced {by} after CI wrote the output of {item.label} (ETag {etag} expected when tagging it, "
                f"{exc.operation} answered {exc.code or exc.status_code}); two sources map to the same output"
            )
            raise ParameterValidationError("output_key", key, rule) from exc
        except TencentCloudError as exc:
            if not exc.retryable:
                raise
            self.log.warning("Output %s of %s was written but not tagged with its source: %s", key, item.label, exc)
            doc["source_tagged"] = False

    def _skipped(self, doc: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
        size = head.get("Content-Length")
        doc.update(
            status="skipped",
            location=self._location(doc["output_bucket"], doc["output_key"]),
            etag=_strip_etag(head.get("ETag")),
            size=int(size) if size not in (None, "") else None,
            request_id=None,
        )
        return doc

    def _download(self, item: SourceItem, doc: dict[str, Any]) -> dict[str, Any]:
        skip = self._skip_existing()
        out_path = out_key = out_bucket = None
        if self.output_path is not None:
            out_path = _batch.contained_path("output_path", self.output_path, item)
            doc["output_path"] = out_path
            if skip and _batch.local_output_fresh(self.hook, out_path, item):
                doc.update(status="skipped", etag=None, size=os.path.getsize(out_path), request_id=None)
                return doc
        else:
            out_bucket = self._out_bucket()
            out_key = _batch.cos_key(self._output_key(item))
            doc.update(output_bucket=out_bucket, output_key=out_key)
            head = self._existing_output("output_key", out_bucket, out_key, item)
            if skip and _batch.cos_output_fresh(self.hook, head, item) is not None:
                return self._skipped(doc, head or {})
        key = item.key if item.kind == "cos" else ""
        params = self.params_spec.wire(self._checked)
        response = self.hook.ci_process(
            item.bucket or "", key or "", self.ci_process.value, params, detect_url=item.url
        )
        try:
            content_type = response.content_type or "image/png"
            if out_path is not None:
                size = _batch.write_atomic(out_path, _batch.chunks_of(response.iter_chunks()))
                doc.update(status="processed", etag=None, size=size)
            else:
                assert out_bucket is not None and out_key is not None
                with _batch.SpooledFile(_batch.chunks_of(response.iter_chunks())) as spool:
                    put = self.hook.upload_file(
                        out_bucket, out_key, spool.path, content_type=content_type, metadata=self._source_metadata(item)
                    )
                doc.update(
                    status="processed",
                    location=self._location(out_bucket, out_key),
                    etag=_strip_etag((put or {}).get("ETag")),
                    size=spool.size,
                )
        finally:
            response.close()
        doc.update(content_type=content_type, request_id=response.request_id)
        return doc


class _MattingOperator(BaseCIImageOperator):
    """Matting parameters, shared by portrait and goods matting.

    :param center_layout: 1 centres the subject, 0 (the service default) does not.
    :param padding_layout: ``(dx, dy)`` or ``"<dx>x<dy>"``: pixels added left/right and top/bottom, each 0..1000.
    """

    template_fields: Sequence[str] = tencentcloud_template_fields(*PORTRAIT_MATTING_SPEC.template_fields)

    def __init__(
        self,
        *,
        center_layout: int | str | None = None,
        padding_layout: tuple[int, int] | list[int] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.center_layout = center_layout
        self.padding_layout = padding_layout


class PortraitMattingOperator(_MattingOperator):
    """Portrait matting (``AIPortraitMatting``): keep the person, transparent background (PNG with alpha)."""

    ci_process = CIProcess.PORTRAIT_MATTING
    params_spec = PORTRAIT_MATTING_SPEC


class GoodsMattingOperator(_MattingOperator):
    """Goods matting (``GoodsMatting``): keep the product, transparent background (PNG with alpha)."""

    ci_process = CIProcess.GOODS_MATTING
    params_spec = GOODS_MATTING_SPEC


class FaceBeautyOperator(BaseCIImageOperator):
    """Face beauty (``AIFaceBeauty``).

    :param strength: beauty strength, a number in 0..1 (service default 0.5).
    :param ignore_error: 1 returns the original image instead of an error when processing fails (e.g. too large).
    """

    ci_process = CIProcess.FACE_BEAUTY
    params_spec = FACE_BEAUTY_SPEC
    template_fields: Sequence[str] = tencentcloud_template_fields(*FACE_BEAUTY_SPEC.template_fields)

    def __init__(
        self,
        *,
        strength: float | str | None = None,
        ignore_error: int | bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.strength = strength
        self.ignore_error = ignore_error
