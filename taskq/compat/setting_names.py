"""Celery's setting names as taskq reads them: old uppercase names, Celery settings taskq
does not have (with the reason), and those whose Celery value is what taskq always does.

The old names are Celery's own (celery/app/defaults.py, ``_TO_NEW_KEY``), kept here only for
the settings taskq has; tests/unit/test_celery_app.py checks them against the installed
Celery, and that every Celery setting is either a taskq setting or has a reason below.
"""

from __future__ import annotations

from typing import Any

# Celery 3's uppercase name -> the name taskq (and Celery 4+) uses.
OLD_NAMES: dict[str, str] = {
    "BROKER_URL": "broker_url",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS": "result_backend_transport_options",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERY_TRACK_STARTED": "task_track_started",
    "CELERY_TIMEZONE": "timezone",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_MAX_MEMORY_PER_CHILD": "worker_max_memory_per_child",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_POOL": "worker_pool",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    # routing settings (taskq/routing.py)
    "CELERY_ROUTES": "task_routes",
    "CELERY_QUEUES": "task_queues",
    "CELERY_DEFAULT_EXCHANGE": "task_default_exchange",
    "CELERY_DEFAULT_EXCHANGE_TYPE": "task_default_exchange_type",
    "CELERY_DEFAULT_ROUTING_KEY": "task_default_routing_key",
    "CELERY_CREATE_MISSING_QUEUES": "task_create_missing_queues",
}

# Celery settings whose Celery value is taskq's fixed behaviour: that value is accepted
# quietly (nothing is dropped); any other value is a warning.
FIXED: dict[str, tuple[Any, str]] = {
    "enable_utc": (True, "taskq keeps every time in UTC internally; `timezone` sets the zone of crontab schedules"),
    "broker_connection_retry": (True, "taskq always reconnects with backoff"),
    "broker_connection_retry_on_startup": (True, "taskq always retries the broker at startup with backoff"),
    "task_protocol": (2, "taskq speaks task message protocol 2 only"),
    "task_publish_retry": (True, "taskq retries a publish after a lost connection"),
    "worker_pool_restarts": (False, "pool restarts through remote control are not supported"),
    "worker_enable_remote_control": (True, "remote control is always on (taskq inspect / control)"),
    "result_persistent": (None, "results are written as the backend writes them (durable on Redis and databases)"),
    "result_accept_content": (None, "results are JSON, Celery's result document"),
    "result_serializer": ("json", "results are JSON, Celery's result document"),
    "worker_hijack_root_logger": (True, "the worker configures the root logger (-l, --logfile, --log-format)"),
    "worker_redirect_stdouts": (True, "a task's print() goes to the worker's stderr"),
}

_BACKEND = "result backend is not supported: use redis://, rpc:// or db+postgresql/mysql/sqlite URLs (docs/backends.md)"
_URL = "give it in the URL (broker_url / result_backend), which taskq reads as Celery does"

# A reason per Celery setting taskq does not have; the first matching prefix wins.
REASONS: tuple[tuple[str, str], ...] = (
    ("arangodb_", "the ArangoDB " + _BACKEND),
    ("azureblockblob_", "the Azure Block Blob " + _BACKEND),
    ("cassandra_", "the Cassandra " + _BACKEND),
    ("cosmosdbsql_", "the Cosmos DB " + _BACKEND),
    ("couchbase_", "the Couchbase " + _BACKEND),
    ("elasticsearch_", "the Elasticsearch " + _BACKEND),
    ("gcs_", "the Google Cloud Storage " + _BACKEND),
    ("mongodb_", "the MongoDB " + _BACKEND),
    ("s3_", "the S3 " + _BACKEND),
    ("cache_", "the cache (memcached) " + _BACKEND),
    ("database_", "taskq's database backend is configured by its db+ URL alone and creates Celery's tables itself"),
    ("redis_", _URL + " (redis://:password@host:port/db, rediss:// for TLS)"),
    ("broker_host", _URL),
    ("broker_port", _URL),
    ("broker_user", _URL),
    ("broker_password", _URL),
    ("broker_vhost", _URL),
    ("broker_use_ssl", _URL + " (rediss://, amqps://)"),
    ("broker_login_method", _URL),
    ("broker_transport", _URL + " (kombu+TRANSPORT:// for other kombu transports)"),
    ("broker_read_url", "one broker URL serves reads and writes"),
    ("broker_write_url", "one broker URL serves reads and writes"),
    ("broker_failover_strategy", "several amqp:// URLs separated by ';' are tried in order (docs/rabbitmq.md)"),
    ("broker_pool_limit", "taskq keeps one connection per process (and per prefork child), not a pool"),
    ("broker_pool_acquire_timeout", "taskq keeps one connection per process, not a pool"),
    ("broker_connection_timeout", "connection timeouts are taskq's own (broker_transport_options)"),
    ("broker_connection_max_retries", "taskq reconnects with backoff without a retry limit"),
    ("broker_channel_error_retry", "taskq reconnects after channel errors too"),
    ("broker_heartbeat", "AMQP heartbeats are pika's defaults"),
    ("broker_native_delayed_delivery_queue_type", "countdown/eta wait broker-side (docs/delivery.md)"),
    ("security_", "X.509 message signing is not supported: taskq signs messages with an HMAC key (signing_key)"),
    ("control_", "remote-control queues are declared by taskq itself (docs/monitoring.md)"),
    ("event_", "event queues and exchange are declared by taskq itself (docs/monitoring.md)"),
    ("beat_schedule_filename", "beat keeps its state in beat_store_url (sqlite or Redis), not a shelve file"),
    ("beat_scheduler", "taskq has one scheduler; its store is beat_store_url (docs/beat.md)"),
    ("beat_sync_every", "beat writes each run to its store at once"),
    ("beat_max_loop_interval", "beat sleeps until the next due instant, not on a polling tick"),
    ("beat_cron_starting_deadline", "missed runs follow each entry's misfire_grace_time and coalesce (docs/beat.md)"),
    ("beat_enable_remote_control", "beat has no remote control"),
    ("beat_remote_control_max_tick_age", "beat has no remote control"),
    ("result_backend_", "backend retries are taskq's own (reconnect with backoff)"),
    ("result_cache_max", "results are not cached in the client"),
    ("result_chord_", "chords are counted atomically in the backend, without polling (docs/canvas.md)"),
    ("result_compression", "results are not compressed"),
    ("result_exchange", "the rpc:// backend replies to the sender's queue; there is no results exchange"),
    ("result_extended", "not supported yet: results keep Celery's basic document (status, result, traceback)"),
    ("result_failure_expires", "failed results expire after result_expires like the others"),
    ("task_acks_on_failure", "a failed task is always acked (its message goes to the dead-letter store)"),
    ("task_acks_on_timeout", "a task past its hard time limit ends FAILURE and is acked"),
    ("task_allow_error_cb_on_chord_header", "not supported yet"),
    ("task_annotations", "not supported yet: give options on @app.task"),
    ("task_compression", "messages are not compressed"),
    ("task_create_missing_queue", "queues are declared as taskq declares them (queue_arguments)"),
    ("task_default_delivery_mode", "messages are always persistent"),
    ("task_default_priority", "a task's priority= or apply_async(priority=) sets it; the default is 0"),
    ("task_default_queue_type", "queue types come from queue_arguments (x-queue-type)"),
    ("task_default_rate_limit", "not supported yet: give rate_limit= on @app.task"),
    ("task_inherit_parent_priority", "not supported yet"),
    ("task_publish_retry_policy", "publish retries follow taskq's reconnect backoff"),
    ("task_queue_max_priority", "taskq declares its queues with x-max-priority 10 (queue_arguments)"),
    ("task_remote_tracebacks", "the traceback is stored in the result and shown by taskq result"),
    ("task_repr_maxlevels", "argsrepr is written at taskq's own length"),
    ("task_retry_on_worker_lost", "see task_reject_on_worker_lost"),
    ("task_store_eager_result", "not supported yet: eager results stay in memory"),
    ("task_store_errors_even_if_ignored", "not supported yet"),
    ("worker_agent", "there is no worker agent"),
    ("worker_autoscaler", "autoscaling is not supported: run more workers"),
    ("worker_cancel_long_running_tasks_on_connection_loss", "claims are kept across reconnects (docs/delivery.md)"),
    ("worker_consumer", "the consumer class cannot be replaced"),
    ("worker_deduplicate_successful_tasks", "a finished task's message is acked before its claim can expire"),
    ("worker_detect_quorum_queues", "queue arguments come from queue_arguments"),
    ("worker_direct", "per-worker queues are not supported"),
    ("worker_disable_prefetch", "each pool slot fetches for itself (worker_prefetch_multiplier, worker_hold_limit)"),
    ("worker_disable_rate_limits", "rate limits are per task (rate_limit=)"),
    ("worker_enable_prefetch_count_reduction", "prefetch grows and shrinks by itself (worker_prefetch_max)"),
    ("worker_enable_soft_shutdown_on_idle", "see worker_shutdown_timeout"),
    ("worker_soft_shutdown_timeout", "running tasks get worker_shutdown_timeout after SIGTERM"),
    ("worker_eta_task_limit", "eta tasks wait broker-side, never in the worker"),
    ("worker_log_", "the worker's log format is -l / --log-format text|json"),
    ("worker_task_log_", "the worker's log format is -l / --log-format text|json"),
    ("worker_lost_wait", "not needed: the supervisor sees a lost child at once"),
    ("worker_pool_putlocks", "not applicable to taskq's pools"),
    ("worker_pool_start_method", "prefork children are forked"),
    ("worker_proc_alive_timeout", "not applicable: children report readiness through their slot"),
    ("worker_redirect_stdouts_level", "a task's print() goes to the worker's stderr"),
    ("worker_state_db", "revocations persist in the result backend (revoke_expires), not a state file"),
    ("worker_timer", "not applicable: taskq has no timer thread to replace"),
)


def reason_unsupported(name: str) -> str | None:
    """Why a Celery setting is not one of taskq's, or None when no rule names it."""
    for prefix, reason in REASONS:
        if name.startswith(prefix) and reason:
            return reason
    return None
