#!/bin/sh
# Start a taskq worker from environment variables (see example.env). Extra arguments are
# passed on to `taskq worker`. Settings such as TASKQ_WORKER_CONCURRENCY, TASKQ_WORKER_POOL
# and TASKQ_BROKER_URL are read by taskq itself.
set -eu

: "${TASKQ_APP:?set TASKQ_APP to module:app of your project}"

set -- worker -A "$TASKQ_APP" -l "${TASKQ_LOGLEVEL:-info}" "$@"
if [ -n "${TASKQ_WORKER_QUEUES:-}" ]; then
    set -- "$@" -Q "$TASKQ_WORKER_QUEUES"
fi

# exec: the worker is PID 1's child-free replacement and receives SIGTERM directly.
exec taskq "$@"
