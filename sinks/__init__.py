"""Sinks: everything the flow writes (DuckDB tables, the Redis tick tee)."""
