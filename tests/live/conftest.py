"""The live tests share tests/dags/test_live_cloud.py's connection fixture (credentials read back, unique prefix)."""

from tests.dags.test_live_cloud import live_conn

__all__ = ["live_conn"]
