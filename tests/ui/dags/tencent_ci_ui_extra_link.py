"""One portrait matting task for the browser test that follows its extra link into the emulator's object view.

The test creates the connection (with the emulator's ``console_base_url`` extra) and seeds the input object.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator

DAG_ID = "tencent_ci_ui_extra_link"
CONN_ID = "tencent_ui_emulator"
BUCKET = "examplebucket-1250000000"
SOURCE_KEY = "ui/in/person.png"
OUTPUT_KEY = "ui/out/person.png"

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    PortraitMattingOperator(
        task_id="matting",
        bucket=BUCKET,
        source_key=SOURCE_KEY,
        output_key=OUTPUT_KEY,
        tencentcloud_conn_id=CONN_ID,
        retries=0,
    )
