"""Export: one table from a source into its writer in staging, then validated.

``table.export_table`` (retries, the stream, the checks, the manifest entry), ``pipeline`` (the one
bounded, cancellable stage helper; key order), ``quarantine`` (bad rows set aside), ``dedup`` (rows
of duplicated keys), ``failures`` (a writer's errors as ours, and its clean-up).
"""
