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

XCom: one document per item (a dict for one source, a list for a batch): ``source``, ``status``
(``processed``/``skipped``/``failed``), ``output_bucket``/``output_key``/``location`` or ``output_path``,
``etag``, ``size``, ``request_id``. Never image bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_tencent_ci.constants import (
    CENTER_LAYOUT_VALUES,
    IGNORE_ERROR_VALUES,
    PADDING_LAYOUT_MAX,
    STRENGTH_MAX,
    STRENGTH_MIN,
    CIProcess,
    ImageMode,
)
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.operators import _batch
from airflow_provider_tencent_ci.operators._batch import SourceItem, pending
from airflow_provider_tencent_ci.operators._image_base import (
    BATCH_TEMPLATE_FIELDS,
    SOURCE_TEMPLATE_FIELDS,
    ImageOperatorBase,
)
from airflow_provider_tencent_ci.validation import (
    check_choice,
    check_float_range,
    check_int_range,
    check_non_empty_str,
)

_PADDING_RE = re.compile(r"^\s*(-?\d+)\s*[xX]\s*(-?\d+)\s*$")
_COMMON_FIELDS = (
    *SOURCE_TEMPLATE_FIELDS,
    "detect_url",
    "upload_key",
    "output_key",
    "output_path",
    "mode",
    *BATCH_TEMPLATE_FIELDS,
)


def _strip_etag(etag: Any) -> str | None:
    return str(etag).strip('"') if etag else None


def _first_result(upload_result: dict[str, Any]) -> dict[str, Any]:
    results = upload_result.get("ProcessResults") or []
    if isinstance(results, dict):  # an XML list of one may come back as a dict
        results = results.get("Object", results)
        results = results if isinstance(results, list) else [results]
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
    template_fields: Sequence[str] = _COMMON_FIELDS

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
        self._validate(rendered=False)

    # -- what differs per operator ----------------------------------------------------------------------------
    def _process_params(self) -> dict[str, str]:
        """The operator's own parameters as CI query parameters (rendered values)."""
        return {}

    def _validate_own(self) -> None:
        """Check the operator's own parameters (skip templated values)."""

    # -- validation -------------------------------------------------------------------------------------------
    def _is_many(self) -> bool:
        return (
            super()._is_many()
            or isinstance(self.source_path, (list, tuple))
            or isinstance(self.detect_url, (list, tuple))
        )

    def _validate(self, rendered: bool) -> None:
        if not pending(self.mode):
            check_choice("mode", self.mode, [m.value for m in ImageMode])
        self._validate_common(rendered)
        self._validate_own()
        if pending(self.mode):
            return
        mode = ImageMode(self.mode)
        many = self._is_many()
        if mode == ImageMode.UPLOAD:
            self._forbid(("source_key", "source_keys", "source_prefix", "detect_url"), "upload mode takes source_path")
            if self.source_path is None:
                raise ParameterValidationError("source_path", None, "is required in upload mode (local file(s))")
            self._check_paths()
            if self.upload_key is None:
                raise ParameterValidationError("upload_key", None, "is required in upload mode (key of the original)")
            self._check_key_template("upload_key", self.upload_key, many)
        else:
            self._forbid(("source_path", "upload_key"), f"{mode.value} mode reads the source from COS")
            names: tuple[str, ...] = ("source_key", "source_keys", "source_prefix")
            if mode == ImageMode.DOWNLOAD:
                names = (*names, "detect_url")
            else:
                self._forbid(("detect_url",), "detect_url is only for download mode")
            self._require_one(names, f"exactly one source is required in {mode.value} mode: one of {', '.join(names)}")
            if self.detect_url is not None:
                self._check_urls()
        if self.bucket is None:
            raise ParameterValidationError("bucket", None, "is required (the bucket whose CI endpoint processes)")
        if mode == ImageMode.DOWNLOAD:
            self._require_one(("output_key", "output_path"), "download mode writes to output_key or output_path")
        else:
            self._forbid(("output_path",), f"{mode.value} mode stores the result in COS (output_key)")
            if self.output_key is None:
                raise ParameterValidationError("output_key", None, f"is required in {mode.value} mode")
        if self.output_key is not None:
            self._check_key_template("output_key", self.output_key, many)
        if self.output_path is not None:
            _batch.check_output_template("output_path", self.output_path, many=many)

    def _forbid(self, names: Sequence[str], rule: str) -> None:
        for name in names:
            if getattr(self, name) is not None:
                raise ParameterValidationError(name, getattr(self, name), f"not allowed: {rule}")

    def _check_key_template(self, param: str, template: Any, many: bool) -> None:
        _batch.check_output_template(param, template, many=many)
        if isinstance(template, str) and not pending(template) and template.endswith("/"):
            raise ParameterValidationError(param, template, "must not end with '/' (that names an empty file)")

    def _check_paths(self) -> None:
        paths = self.source_path
        if pending(paths):
            return
        entries = [paths] if isinstance(paths, str) else paths
        if not isinstance(entries, (list, tuple)) or not entries:
            raise ParameterValidationError("source_path", paths, "must be a path or a non-empty list of paths")
        for p in entries:
            if not pending(p):
                check_non_empty_str("source_path", p)

    def _check_urls(self) -> None:
        urls = self.detect_url
        if pending(urls):
            return
        entries = [urls] if isinstance(urls, str) else urls
        if not isinstance(entries, (list, tuple)) or not entries:
            raise ParameterValidationError("detect_url", urls, "must be a URL or a non-empty list of URLs")
        for u in entries:
            if pending(u):
                continue
            if not isinstance(u, str) or not re.match(r"^https?://[^/\s]+", u):
                raise ParameterValidationError("detect_url", u, "must be an http:// or https:// URL")

    # -- planning ---------------------------------------------------------------------------------------------
    def _plan(self) -> list[SourceItem]:
        mode = ImageMode(self.mode)
        if mode == ImageMode.UPLOAD:
            items = _batch.local_items("source_path", self.source_path or [])
        elif self.detect_url is not None:
            urls = [self.detect_url] if isinstance(self.detect_url, str) else list(self.detect_url)
            bucket = self._full_bucket(self.bucket or "")
            items = [SourceItem("url", bucket=bucket, url=u) for u in dict.fromkeys(urls)]
        else:
            items = self._cos_items()
        out_bucket = self._out_bucket()
        if self.output_key is not None:
            outputs = [_batch.fill_template(self.output_key, i) for i in items]
            _batch.check_unique_outputs("output_key", outputs)
            # A batch never processes its own outputs (an output folder inside the source prefix).
            own = set(outputs)
            if len(items) > 1:
                items = [i for i in items if not (i.kind == "cos" and i.bucket == out_bucket and i.key in own)]
            for i in items:
                if i.kind == "cos" and i.bucket == out_bucket and _batch.fill_template(self.output_key, i) == i.key:
                    raise ParameterValidationError("output_key", self.output_key, f"would overwrite its source {i.key}")
        if self.output_path is not None:
            _batch.check_unique_outputs("output_path", [_batch.fill_template(self.output_path, i) for i in items])
        if self.upload_key is not None:
            _batch.check_unique_outputs("upload_key", [_batch.fill_template(self.upload_key, i) for i in items])
        return items

    def _out_bucket(self) -> str:
        return self._full_bucket(self.output_bucket or self.bucket or "")

    def _rule(self) -> str:
        params = self._process_params()
        return "&".join([f"ci-process={self.ci_process.value}", *(f"{k}={v}" for k, v in params.items())])

    def _pic_operations(self, out_key: str) -> dict[str, Any]:
        # A fileid without a leading "/" is relative to the source's folder: always send an absolute one.
        rule: dict[str, Any] = {"fileid": "/" + out_key.lstrip("/"), "rule": self._rule()}
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
        out_key = _batch.fill_template(self.output_key or "", item)
        doc.update(output_bucket=out_bucket, output_key=out_key)
        if self._skip_existing():
            head = _batch.cos_output_fresh(self.hook, out_bucket, out_key, item)
            if head is not None:
                return self._skipped(doc, head)
        if mode == ImageMode.CLOUD:
            result = self.hook.image_process(item.bucket or "", item.key or "", self._pic_operations(out_key))
        else:
            upload_key = _batch.fill_template(self.upload_key or "", item)
            bucket = self._full_bucket(self.bucket or "")
            ops = self._pic_operations(out_key)
            result = self.hook.put_object_with_pic_operations(bucket, upload_key, item.path or "", ops)
            original = result.get("OriginalInfo") or {}
            doc.update(
                original_bucket=bucket, original_key=upload_key, original_etag=_strip_etag(original.get("ETag"))
            )
        obj = _first_result(result)
        size = obj.get("Size")
        doc.update(
            status="processed",
            location=obj.get("Location") or self._location(out_bucket, out_key),
            etag=_strip_etag(obj.get("ETag")),
            size=int(size) if size not in (None, "") else None,
            request_id=result.get("RequestId"),
        )
        return doc

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
            out_path = _batch.fill_template(self.output_path, item)
            doc["output_path"] = out_path
            if skip and _batch.local_output_fresh(self.hook, out_path, item):
                import os

                doc.update(status="skipped", etag=None, size=os.path.getsize(out_path), request_id=None)
                return doc
        else:
            out_bucket = self._out_bucket()
            out_key = _batch.fill_template(self.output_key or "", item)
            doc.update(output_bucket=out_bucket, output_key=out_key)
            if skip:
                head = _batch.cos_output_fresh(self.hook, out_bucket, out_key, item)
                if head is not None:
                    return self._skipped(doc, head)
        key = item.key if item.kind == "cos" else ""
        response = self.hook.ci_process(item.bucket or "", key or "", self.ci_process.value, self._process_params(),
                                        detect_url=item.url)
        try:
            content_type = response.content_type or "image/png"
            if out_path is not None:
                size = _batch.write_atomic(out_path, _batch.chunks_of(response.iter_chunks()))
                doc.update(status="processed", etag=None, size=size)
            else:
                assert out_bucket is not None and out_key is not None
                with _batch.spooled_file(_batch.chunks_of(response.iter_chunks())) as spool:
                    put = self.hook.upload_file(out_bucket, out_key, spool.path, content_type=content_type)
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

    template_fields: Sequence[str] = (*_COMMON_FIELDS, "center_layout", "padding_layout")

    def __init__(
        self,
        *,
        center_layout: int | str | None = None,
        padding_layout: tuple[int, int] | list[int] | str | None = None,
        **kwargs: Any,
    ) -> None:
        self.center_layout = center_layout
        self.padding_layout = padding_layout
        super().__init__(**kwargs)

    def _validate_own(self) -> None:
        if self.center_layout is not None and not pending(self.center_layout):
            value = check_int_range("center_layout", self.center_layout, 0, 1)
            check_choice("center_layout", value, CENTER_LAYOUT_VALUES)
        if self.padding_layout is not None and not pending(self.padding_layout):
            self._padding()

    def _padding(self) -> tuple[int, int]:
        value = self.padding_layout
        rule = f"must be (dx, dy) or '<dx>x<dy>' with integers 0..{PADDING_LAYOUT_MAX}"
        if isinstance(value, str):
            match = _PADDING_RE.match(value)
            if not match:
                raise ParameterValidationError("padding_layout", value, rule)
            parts: Sequence[Any] = match.groups()
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            parts = value
        else:
            raise ParameterValidationError("padding_layout", value, rule)
        dx, dy = (
            check_int_range(f"padding_layout[{i}]", p, 0, PADDING_LAYOUT_MAX) if not pending(p) else 0
            for i, p in enumerate(parts)
        )
        return dx, dy

    def _process_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.center_layout is not None:
            params["center-layout"] = str(int(self.center_layout))
        if self.padding_layout is not None:
            dx, dy = self._padding()
            params["padding-layout"] = f"{dx}x{dy}"
        return params


class PortraitMattingOperator(_MattingOperator):
    """Portrait matting (``AIPortraitMatting``): keep the person, transparent background (PNG with alpha)."""

    ci_process = CIProcess.PORTRAIT_MATTING


class GoodsMattingOperator(_MattingOperator):
    """Goods matting (``GoodsMatting``): keep the product, transparent background (PNG with alpha)."""

    ci_process = CIProcess.GOODS_MATTING


class FaceBeautyOperator(BaseCIImageOperator):
    """Face beauty (``AIFaceBeauty``).

    :param strength: beauty strength, a number in 0..1 (service default 0.5).
    :param ignore_error: 1 returns the original image instead of an error when processing fails (e.g. too large).
    """

    ci_process = CIProcess.FACE_BEAUTY
    template_fields: Sequence[str] = (*_COMMON_FIELDS, "strength", "ignore_error")

    def __init__(
        self,
        *,
        strength: float | str | None = None,
        ignore_error: int | bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        self.strength = strength
        self.ignore_error = ignore_error
        super().__init__(**kwargs)

    def _validate_own(self) -> None:
        if self.strength is not None and not pending(self.strength):
            check_float_range("strength", self.strength, STRENGTH_MIN, STRENGTH_MAX)
        if self.ignore_error is not None and not pending(self.ignore_error):
            self._ignore_error_value()

    def _ignore_error_value(self) -> int:
        value = self.ignore_error
        if isinstance(value, bool):
            return int(value)
        number = check_int_range("ignore_error", value, 0, 1)
        check_choice("ignore_error", number, IGNORE_ERROR_VALUES)
        return number

    def _process_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.strength is not None:
            # repr of a float is the shortest exact form ("0.3", not "0.29999999999999999")
            params["strength"] = repr(float(self.strength))
        if self.ignore_error is not None:
            params["ignore-error"] = str(self._ignore_error_value())
        return params
