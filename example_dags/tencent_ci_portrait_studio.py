"""Portrait studio: upload local portraits with face beauty, matte them, then segment head and hair."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_tencent_ci.constants import PADDING_LAYOUT_MAX, SEGMENTATION_PARTS, STRENGTH_MAX, STRENGTH_MIN
from airflow_provider_tencent_ci.operators.bda import SegmentPortraitPartsOperator
from airflow_provider_tencent_ci.operators.ci_image import FaceBeautyOperator, PortraitMattingOperator

BUCKET = "{{ var.value.get('tencent_ci_bucket', 'examplebucket-1250000000') }}"
# Every output key is a pure function of the source file name and the parameters that shaped it, so a rerun with
# the same parameters finds its outputs (and skips the paid calls), and new parameters never reuse stale results.
ROOT = "{{ params.output_prefix }}"
BEAUTY = "strength-{{ params.strength }}"
MATTED = BEAUTY + "_padding-{{ params.padding }}"
PARTS = "{{ params.parts | join('-') }}"

DOC = """
### Portrait studio

1. **Upload + face beauty** (`FaceBeautyOperator`, `mode="upload"`): every image in the local folder
   `params.local_dir` is uploaded with a `Pic-Operations` header, so COS stores the original
   (`<output_prefix>/originals/`) and CI writes the beautified copy (`.../beauty/`) in the same request.
2. **Portrait matting** (`PortraitMattingOperator`, cloud mode) of the beautified images, centred, with
   `params.padding` pixels of transparent margin on each side.
3. **Part segmentation** (`SegmentPortraitPartsOperator`, BDA SegmentCustomizedPortraitPic) keeping
   `params.parts` (default Head and Hair): a transparent PNG and a mask per portrait.

Each step hands its output keys to the next through XCom (the operators return one small JSON document per
image; never image bytes). The parameters are validated by the trigger form's JSON schema before a run starts,
and again by the operators before any paid request.

Output keys encode the parameters (`strength-0.6_padding-20/...`), so rerunning with the same parameters costs
nothing (existing outputs newer than their sources are skipped) and changing a parameter never reuses a result
made with another value.
"""


@task
def output_keys(docs: list[dict[str, Any]] | dict[str, Any] | None) -> list[str]:
    """The COS keys written by an image operator (its XCom is a document per image)."""
    items = docs if isinstance(docs, list) else [docs] if docs else []
    keys = [d["output_key"] for d in items if d.get("status") in ("processed", "skipped") and d.get("output_key")]
    if not keys:
        raise ValueError("the previous step produced no output to process")
    return keys


with DAG(
    dag_id="tencent_ci_portrait_studio",
    description="Local portraits -> face beauty (upload) -> portrait matting -> head/hair segmentation",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "local_dir": Param(
            "/opt/airflow/data/portraits",
            type="string",
            minLength=1,
            description="Folder on the worker with the portraits to upload (JPG/PNG/BMP)",
        ),
        "output_prefix": Param("studio", type="string", minLength=1, pattern=r"^[^/].*[^/]$|^[^/]$"),
        "strength": Param(
            0.6, type="number", minimum=STRENGTH_MIN, maximum=STRENGTH_MAX, description="Face beauty strength"
        ),
        "parts": Param(
            ["Head", "Hair"],
            type="array",
            items={"type": "string", "enum": list(SEGMENTATION_PARTS)},
            minItems=1,
            uniqueItems=True,
            description="Portrait parts to keep in the segmentation",
        ),
        "padding": Param(
            20, type="integer", minimum=0, maximum=PADDING_LAYOUT_MAX, description="Transparent margin (px)"
        ),
    },
    doc_md=DOC,
    tags=["tencent-ci", "example", "face-beauty", "matting", "bda"],
) as dag:
    beauty = FaceBeautyOperator(
        task_id="upload_with_face_beauty",
        mode="upload",
        bucket=BUCKET,
        source_path="{{ params.local_dir }}",
        upload_key=ROOT + "/originals/{name}",
        output_key=ROOT + "/" + BEAUTY + "/beauty/{stem}.png",
        strength="{{ params.strength }}",
        if_exists="skip",
        max_concurrency=4,
    )

    matting = PortraitMattingOperator(
        task_id="portrait_matting",
        bucket=BUCKET,
        source_keys=output_keys.override(task_id="beauty_keys")(beauty.output),
        output_key=ROOT + "/" + MATTED + "/matted/{stem}.png",
        center_layout=1,
        padding_layout="{{ params.padding }}x{{ params.padding }}",
        if_exists="skip",
        max_concurrency=4,
    )

    segmentation = SegmentPortraitPartsOperator(
        task_id="segment_parts",
        bucket=BUCKET,
        source_keys=output_keys.override(task_id="matted_keys")(matting.output),
        parts="{{ params.parts | join(',') }}",
        portrait_output_key=ROOT + "/" + MATTED + "/parts-" + PARTS + "/{stem}.png",
        mask_output_key=ROOT + "/" + MATTED + "/parts-" + PARTS + "/{stem}.mask.png",
        auto_resize=True,
        if_exists="skip",
        max_concurrency=4,
    )

    @task(retries=0)
    def report(beauty_docs: Any, matting_docs: Any, part_docs: Any) -> list[dict[str, Any]]:
        """One line per portrait: where its original, beauty, matting and segmentation results are."""

        def by_stem(docs: Any, field: str) -> dict[str, str]:
            out = {}
            for d in docs if isinstance(docs, list) else [docs]:
                if d and d.get(field):
                    out[d[field].rsplit("/", 1)[-1].split(".", 1)[0]] = d[field]
            return out

        originals = by_stem(beauty_docs, "original_key")
        beautified = by_stem(beauty_docs, "output_key")
        matted = by_stem(matting_docs, "output_key")
        portraits = by_stem(part_docs, "portrait_key")
        rows = [
            {
                "portrait": stem,
                "original": originals.get(stem),
                "beauty": beautified.get(stem),
                "matting": matted.get(stem),
                "segmentation": portraits.get(stem),
            }
            for stem in sorted(beautified)
        ]
        for row in rows:
            print(row)
        return rows

    report(beauty.output, matting.output, segmentation.output)
