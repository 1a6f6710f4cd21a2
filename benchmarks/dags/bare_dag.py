"""Benchmark 4 baseline: a bare Airflow DAG (what every DAG file pays before any provider import)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

with DAG(
    dag_id="bench_bare",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    pass
