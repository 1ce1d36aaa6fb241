#!/bin/sh
# Entrypoint of the Volume Data Sync container.
#
#   (no arguments)      serve the admin app: `streamlit run streamlit_app.py` on $SYNCER_PORT (8501).
#                       Its server lifespan runs the startup step (repair, then a sync unless the data
#                       is fresh) and the daily scheduler; GET /ready answers 200 once data is served.
#   syncer ARGS...      run one CLI command instead, e.g. `syncer status --json` (also: ARGS... alone)
#
# Environment: SYNCER_CONFIG (default /app/spcs/sync.toml), SYNCER_LOG_FORMAT (json), SYNCER_PORT
# (8501), SYNCER_APP_DIR (/app). SYNCER_DRY_RUN=1 prints the server command instead of running it.
set -eu

: "${SYNCER_CONFIG:=/app/spcs/sync.toml}"
: "${SYNCER_LOG_FORMAT:=json}"
: "${SYNCER_PORT:=8501}"
: "${SYNCER_APP_DIR:=/app}"
: "${ARROW_DEFAULT_MEMORY_POOL:=system}"  # returns freed memory (see syncer/cli.py)
export SYNCER_CONFIG SYNCER_LOG_FORMAT ARROW_DEFAULT_MEMORY_POOL

fail() {
    # One JSON line, like every other log line of the container (the event table parses them).
    python -c 'import json, sys, datetime as d; print(json.dumps({"time": d.datetime.now(d.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": "ERROR", "logger": "entrypoint", "run_id": None, "table": None, "step": "entrypoint", "message": sys.argv[1]}))' "$1"
    exit "${2:-2}"
}

# Validate the config before anything starts (a wrong key fails here with one clear line), and find
# the volume root it names.
if ! root=$(python -c 'import sys, syncer
try:
    print(syncer.load_config().root)
except syncer.ConfigError as exc:
    print(exc)
    sys.exit(2)'); then
    fail "$root"
fi

# The volume must be writable by this (non-root) user: fail now, not at the first sync.
probe="$root/.entrypoint-write-test.$$"
if ! { mkdir -p "$root" && : > "$probe" && rm -f "$probe"; } 2>/dev/null; then
    fail "volume root $root is not writable by uid $(id -u); mount the block volume there (spec.yaml volumeMounts, mountPath = [volume] root in $SYNCER_CONFIG) and check its ownership"
fi

if [ "$#" -gt 0 ]; then
    if [ "$1" = "syncer" ]; then
        shift
    fi
    exec syncer "$@"
fi

cd "$SYNCER_APP_DIR"
set -- streamlit run streamlit_app.py \
    --server.port="$SYNCER_PORT" \
    --server.address=0.0.0.0 \
    --server.headless=true \
    --browser.gatherUsageStats=false
if [ "${SYNCER_DRY_RUN:-}" = "1" ]; then
    echo "$@"
    exit 0
fi
exec "$@"
