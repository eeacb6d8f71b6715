"""The scheduling core, Celery beat's half of taskq.beat: schedules and their wall-clock
arithmetic, entries and their misfire plan, the schedule stores (leader lock, per-instant
claim), submitters, the heartbeat, and ``SchedulerCore`` (``loop.py``), whose ``tick()`` does
one pass. Nothing here imports the APScheduler-shaped layer around it."""
