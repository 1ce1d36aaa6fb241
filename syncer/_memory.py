"""Arrow's allocator for syncer's own processes (the CLI, and the admin app via its launchers).

Arrow allocates from mimalloc by default, which keeps pages freed by one thread for that thread. A
sync allocates on several (reader, profiler, one Parquet encoder per part): at 5M rows the system
allocator peaked about 50 MB lower (215 vs 265 MB). Only the choice made before pyarrow loads
counts (``ARROW_DEFAULT_MEMORY_POOL``; switching the pool later measured no gain), so the CLI
imports this module first, and ``make run`` and the SPCS image set the variable for the app.
An operator's own ``ARROW_DEFAULT_MEMORY_POOL`` wins; library users who call ``syncer.sync`` from
their own process keep their allocator.
"""

from __future__ import annotations

import os
import sys

if "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
