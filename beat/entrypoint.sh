#!/bin/sh
# Start taskq beat from environment variables (see example.env). Extra arguments are passed
# on. TASKQ_BEAT_LOCK_TTL and TASKQ_BEAT_HEARTBEAT_FILE are read by the command itself;
# TASKQ_BEAT_STORE_URL and TASKQ_BEAT_SCHEDULE by taskq's settings.
set -eu

: "${TASKQ_APP:?set TASKQ_APP to module:app of your project}"

# exec: beat replaces the shell and receives SIGTERM directly (it then releases its lock).
exec taskq beat -A "$TASKQ_APP" -l "${TASKQ_LOGLEVEL:-info}" "$@"
