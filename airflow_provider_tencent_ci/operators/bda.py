"""SegmentPortraitPartsOperator: BDA SegmentCustomizedPortraitPic on one or many images.

Sources: a COS object (``bucket`` + ``source_key`` / ``source_keys`` / ``source_prefix``), a local file
(``source_path``: a file, a list, or a directory) or a public URL (``url``: one or a list; the service fetches it, so
its limits cannot be checked locally). Images read here are checked against the documented limits before the paid
call: PNG/JPG/JPEG/BMP (no GIF), smaller than 2000x2000, at most 5 MB once base64-encoded. With
``auto_resize=True`` an image that is too large is downscaled (and re-encoded) to fit instead of failing.

Outputs: the portrait (transparent PNG) and the mask (PNG) are written to COS keys (``portrait_output_key``,
``mask_output_key`` in ``output_bucket``/``bucket``) or local paths (``portrait_output_path``, ``mask_output_path``;
temp file + rename). All four are templates with the per-item placeholders ``{key}``, ``{name}``, ``{stem}``,
``{ext}``, ``{dir}``.

XCom: one document per item with the source, the outputs (bucket/key/ETag/size or path/size), ``image_rects``
(the service's ImageRects), ``request_id``, ``resized`` and ``status``; above ``ITEM_DOCS_MAX_ITEMS`` items, a
summary and a JSON-lines manifest of those documents (:mod:`._manifest`).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_tencent_ci.constants import (
    BDA_IMAGE_FORMATS,
    BDA_MAX_BASE64_BYTES,
    BDA_MAX_DIMENSION_EXCLUSIVE,
)
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.operators import _batch
from airflow_provider_tencent_ci.operators._batch import SourceItem
from airflow_provider_tencent_ci.operators._image_base import ImageOperatorBase, Output
from airflow_provider_tencent_ci.operators.base import BDA_HOOK, make_hook, tencentcloud_template_fields
from airflow_provider_tencent_ci.params.image import BDA_SPEC

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.bda import BDAHook


def base64_size(n: int) -> int:
    return 4 * ((n + 2) // 3)


# Our own cap on what auto_resize downloads and decodes (not a BDA limit: BDA takes at most 5 MiB of base64).
AUTO_RESIZE_MAX_BYTES = 64 * 1024 * 1024


def check_object_size(param: str, source: str, size: int | None, *, auto_resize: bool) -> None:
    """Refuse a COS source from its HEAD, before downloading it, when its size already breaks the limits."""
    if size is None:
        return
    if not auto_resize and base64_size(size) > BDA_MAX_BASE64_BYTES:
        rule = f"is {base64_size(size)} bytes in base64; must be <= {BDA_MAX_BASE64_BYTES} (or set auto_resize=True)"
        raise ParameterValidationError(param, source, rule)
    if auto_resize and size > AUTO_RESIZE_MAX_BYTES:
        raise ParameterValidationError(
            param, source, f"is {size} bytes; auto_resize reads at most {AUTO_RESIZE_MAX_BYTES}"
        )


def prepare_image(param: str, source: str, data: bytes, *, auto_resize: bool) -> tuple[bytes, bool]:
    """Check the documented input limits; with ``auto_resize`` downscale to fit. Returns (bytes, resized).

    Format and dimensions come from the image header (Pillow opens lazily): an image over the limits is refused
    without decoding its pixels, and ``auto_resize`` never decodes more than Pillow's bomb limit
    (``Image.MAX_IMAGE_PIXELS``). Raises ParameterValidationError naming ``param`` (the source parameter), the source
    and the broken rule.
    """
    from PIL import Image, UnidentifiedImageError

    formats = "PNG, JPG/JPEG or BMP"
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ParameterValidationError(
            param, source, f"is larger than Pillow's decompression-bomb limit ({exc})"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ParameterValidationError(param, source, f"must be a {formats} image (not decodable)") from None
    if img.format == "GIF":
        raise ParameterValidationError(param, source, f"GIF images are not supported; use {formats}")
    if img.format not in BDA_IMAGE_FORMATS:
        raise ParameterValidationError(param, source, f"format {img.format} is not supported; use {formats}")
    width, height = img.size
    limit = BDA_MAX_DIMENSION_EXCLUSIVE
    too_big = width >= limit or height >= limit
    too_heavy = base64_size(len(data)) > BDA_MAX_BASE64_BYTES
    if not too_big and not too_heavy:
        _decode(param, source, img, formats)  # bounded: < 2000x2000
        return data, False
    if not auto_resize:
        if too_big:
            rule = f"is {width}x{height}; width and height must be < {limit} (or set auto_resize=True)"
        else:
            rule = (
                f"is {base64_size(len(data))} bytes in base64; must be <= {BDA_MAX_BASE64_BYTES} "
                "(or set auto_resize=True)"
            )
        raise ParameterValidationError(param, source, rule)
    bomb = Image.MAX_IMAGE_PIXELS
    if bomb is not None and width * height > bomb:
        rule = f"is {width}x{height}; auto_resize decodes at most {bomb} pixels (Pillow's decompression-bomb limit)"
        raise ParameterValidationError(param, source, rule)
    _decode(param, source, img, formats)
    return _shrink(_upright_8bit(img)), True


def _decode(param: str, source: str, img: Any, formats: str) -> None:
    try:
        img.load()
    except (OSError, ValueError):
        raise ParameterValidationError(param, source, f"must be a {formats} image (not decodable)") from None


def _upright_8bit(img: Any) -> Any:
    """EXIF orientation applied (else BDA gets the photo sideways) and 16/32-bit samples scaled to 8 bits (a plain
    convert clips them: a 16-bit grayscale comes out almost white)."""
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16") or img.mode == "I":
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif img.mode == "F":
        img = img.convert("L")
    return img


def _shrink(img: Any) -> bytes:
    """Downscale below the size limits, then keep shrinking by 20% until the base64 body fits."""
    from PIL import Image

    limit = BDA_MAX_DIMENSION_EXCLUSIVE - 1
    scale = min(1.0, limit / img.width, limit / img.height)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    while True:
        size = (max(1, min(limit, round(img.width * scale))), max(1, min(limit, round(img.height * scale))))
        resized = img.resize(size, Image.Resampling.LANCZOS) if size != img.size else img
        buf = io.BytesIO()
        if has_alpha:
            resized.save(buf, format="PNG", optimize=True)
        else:  # photos: JPEG keeps them far under the limit
            resized.convert("RGB").save(buf, format="JPEG", quality=90)
        out = buf.getvalue()
        if base64_size(len(out)) <= BDA_MAX_BASE64_BYTES or size == (1, 1):
            return out
        scale *= 0.8


class SegmentPortraitPartsOperator(ImageOperatorBase):
    """Segment portrait parts (BDA ``SegmentCustomizedPortraitPic``) of one or many images.

    :param parts: the parts to keep, at least one of ``constants.SEGMENTATION_PARTS`` (a list, or a
        comma-separated string).
    :param source_path: local source(s): a file, a list of files or a directory.
    :param url: public image URL(s) the service downloads itself (limits not checked locally).
    :param portrait_output_key: COS key of the portrait PNG (template); ``mask_output_key``: of the mask PNG.
    :param portrait_output_path: local path of the portrait PNG (template); ``mask_output_path``: of the mask.
    :param auto_resize: downscale images over the documented limits instead of failing.
    :param bda_region: BDA region (ap-beijing, ap-guangzhou, ap-shanghai); default: the connection's region.

    Shared parameters (``bucket``, ``source_key``/``source_keys``/``source_prefix``, ``modified_after``/
    ``modified_before``, ``output_bucket``, ``if_exists``, ``max_concurrency``, ``continue_on_error``) are those of
    :class:`~airflow_provider_tencent_ci.operators._image_base.ImageOperatorBase`.
    """

    params_spec = BDA_SPEC
    list_params = ("source_path", "url")
    template_fields: Sequence[str] = tencentcloud_template_fields(*BDA_SPEC.template_fields)

    def __init__(
        self,
        *,
        parts: Sequence[str] | str,
        source_path: str | list[str] | None = None,
        url: str | list[str] | None = None,
        portrait_output_key: str | None = None,
        mask_output_key: str | None = None,
        portrait_output_path: str | None = None,
        mask_output_path: str | None = None,
        auto_resize: bool | str = False,
        bda_region: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.parts = parts
        self.source_path = source_path
        self.url = url
        self.portrait_output_key = portrait_output_key
        self.mask_output_key = mask_output_key
        self.portrait_output_path = portrait_output_path
        self.mask_output_path = mask_output_path
        self.auto_resize = auto_resize
        self.bda_region = bda_region

    @cached_property
    def bda_hook(self) -> BDAHook:
        return cast("BDAHook", make_hook(BDA_HOOK, self.tencentcloud_conn_id, self.bda_region or self.region))

    # -- planning ---------------------------------------------------------------------------------------------
    def _sources(self) -> list[SourceItem]:
        if self.source_path is not None:
            return _batch.local_items("source_path", self.source_path)
        if self.url is not None:
            urls = [self.url] if isinstance(self.url, str) else list(self.url)
            return [SourceItem("url", url=u) for u in dict.fromkeys(urls)]
        return self._cos_items()

    def _outputs(self, item: SourceItem) -> list[Output]:
        """portrait then mask: a COS key when given (in output_bucket/bucket), else a local path."""
        outputs = []
        for role in ("portrait", "mask"):
            key_t, path_t = getattr(self, f"{role}_output_key"), getattr(self, f"{role}_output_path")
            if key_t is not None:
                key = _batch.cos_key(_batch.fill_template(key_t, item))
                outputs.append(Output(f"{role}_output_key", "cos", self._out_bucket(), key))
            elif path_t is not None:
                param = f"{role}_output_path"
                outputs.append(Output(param, "local", None, _batch.contained_path(param, path_t, item)))
        return outputs

    def _streams_listing(self) -> bool:
        return self.source_path is None and self.url is None and super()._streams_listing()

    def _cos_output_prefixes(self) -> list[tuple[str, str]]:
        templates = (self.portrait_output_key, self.mask_output_key)
        return [(self._out_bucket(), _batch.cos_key(t.split("{", 1)[0])) for t in templates if t is not None]

    def _local_output_templates(self) -> list[str]:
        return [t for t in (self.portrait_output_path, self.mask_output_path) if t is not None]

    def _source_param(self, item: SourceItem) -> str:
        if item.kind == "local":
            return "source_path"
        if item.kind == "url":
            return "url"
        return next(n for n in ("source_key", "source_keys", "source_prefix") if getattr(self, n) is not None)

    def _warm_up(self) -> None:
        if (
            self.source_key is not None
            or self.source_keys is not None
            or self.source_prefix is not None
            or any(getattr(self, n) is not None for n in ("portrait_output_key", "mask_output_key"))
        ):
            self.hook.get_conn()
        self.bda_hook.get_conn()

    # -- one item ---------------------------------------------------------------------------------------------
    def _process(self, item: SourceItem) -> dict[str, Any]:
        doc: dict[str, Any] = {"source": item.label, "process": "SegmentCustomizedPortraitPic"}
        outputs: dict[str, tuple[str, str]] = {}  # role -> ("cos", key) | ("local", path)
        for out in self._outputs(item):
            role = out.role.split("_", 1)[0]
            outputs[role] = (out.kind, out.target)
        out_bucket = self._out_bucket() if any(kind == "cos" for kind, _ in outputs.values()) else None
        for role, (kind, target) in outputs.items():
            if kind == "cos":
                doc.update({f"{role}_bucket": out_bucket, f"{role}_key": target})
            else:
                doc[f"{role}_path"] = target
        heads = {
            role: self._existing_output(f"{role}_output_key", out_bucket or "", target, item)
            for role, (kind, target) in outputs.items()
            if kind == "cos"
        }
        if self._skip_existing() and self._all_fresh(item, outputs, heads, doc):
            doc.update(status="skipped", request_id=None, image_rects=None)
            return doc

        image_b64 = None
        resized = False
        if item.kind == "url":
            result = self.bda_hook.segment_customized_portrait_pic(self._checked["parts"], url=item.url)
        else:
            auto_resize = bool(self._checked.get("auto_resize"))
            param = self._source_param(item)
            if item.kind == "local":
                check_object_size(param, item.label, os.path.getsize(item.path or ""), auto_resize=auto_resize)
                with open(item.path or "", "rb") as fh:
                    data = fh.read()
            else:  # HEAD first: an object over the limits is never downloaded
                head = self.hook.head_object(item.bucket or "", item.key or "")
                check_object_size(param, item.label, (head or {}).get("Content-Length"), auto_resize=auto_resize)
                data = self.hook.get_object_bytes(item.bucket or "", item.key or "")
            data, resized = prepare_image(param, item.label, data, auto_resize=auto_resize)
            image_b64 = base64.b64encode(data).decode("ascii")
            del data
            result = self.bda_hook.segment_customized_portrait_pic(self._checked["parts"], image_base64=image_b64)
        for role, field in (("portrait", "PortraitImage"), ("mask", "MaskImage")):
            if role not in outputs:
                continue
            kind, target = outputs[role]
            payload = base64.b64decode(result.get(field) or "")
            if kind == "cos":
                assert out_bucket is not None
                put = self.hook.put_object(
                    out_bucket, target, payload, content_type="image/png", metadata=self._source_metadata(item)
                )
                doc.update(
                    {
                        f"{role}_etag": str(put.get("ETag") or "").strip('"') or None,
                        f"{role}_size": len(payload),
                        f"{role}_location": self._location(out_bucket, target),
                    }
                )
            else:
                doc[f"{role}_size"] = _batch.write_atomic(target, [payload])
        doc.update(
            status="processed",
            image_rects=result.get("ImageRects"),
            request_id=result.get("RequestId"),
            resized=resized,
        )
        return doc

    def _all_fresh(
        self,
        item: SourceItem,
        outputs: dict[str, tuple[str, str]],
        heads: dict[str, dict[str, Any] | None],
        doc: dict[str, Any],
    ) -> bool:
        for role, (kind, target) in outputs.items():
            if kind == "cos":
                head = _batch.cos_output_fresh(self.hook, heads.get(role), item)
                if head is None:
                    return False
                doc[f"{role}_etag"] = str(head.get("ETag") or "").strip('"') or None
                doc[f"{role}_size"] = head.get("Content-Length")
            else:
                if not _batch.local_output_fresh(self.hook, target, item):
                    return False
                doc[f"{role}_size"] = os.path.getsize(target)
        return True
