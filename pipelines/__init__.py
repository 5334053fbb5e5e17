"""Imperative shell: Prefect flows, the churn CLI, config loading and all DuckDB/MLflow/file I/O."""
