"""Apache Airflow provider for Tencent Cloud Infinite (CI)."""

__version__ = "0.1.0"
