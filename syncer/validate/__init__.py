"""Validate: the checks of one exported table against the source and the previous snapshot.

``checks.validate_table(Evidence) -> [Check]`` (row count, schema contract, keys, nulls, profile,
sha256, re-open), ``keys`` (duplicate keys of the written rows), ``profile`` (per-column aggregates,
computed the same way on both sides).
"""
