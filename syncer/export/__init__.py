"""Export: one table from a source into its writer in staging, then validated.

``table.export_table`` (retries, the stream on ``syncer._stage`` stages, the checks, the manifest
entry), ``quarantine`` (bad rows set aside), ``dedup`` (rows
of duplicated keys), ``failures`` (a writer's errors as ours, and its clean-up).
"""
