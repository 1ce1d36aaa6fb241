"""The volume: what is published and how.

``manifest`` (the typed records and their JSON), ``layout.Volume`` (paths, ids, manifest I/O,
publish, the ``current`` swap, retention), ``files`` (modes, fsync, carry-over links, removal),
``verify`` (a snapshot's files against its manifest), ``lock`` (one writer), ``history`` (the run
history in ``syncer.db``), ``audit`` (who did what).
"""
