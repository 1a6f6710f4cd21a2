"""Airflow 3.1 / 3.3 differences the tests need, with no side effects at import (child processes use it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG


def dagbag_class() -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.2
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]
    return DagBag


def sync_dag(dag: DAG, dags_folder: str) -> None:
    """Serialize a DAG built in code into the metadata DB, as the DAG processor would (dag.test() needs it)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:
        from airflow.models.dagbag import sync_bag_to_db  # type: ignore[no-redef,attr-defined]

    DagBundlesManager().sync_bundles_to_db()
    bag = dagbag_class()(dag_folder=dags_folder, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def run_dag(dag: DAG, dags_folder: str, **kwargs: Any) -> Any:
    """`dag.test()` for a DAG defined in code; returns the DagRun."""
    sync_dag(dag, dags_folder)
    return dag.test(**kwargs)
