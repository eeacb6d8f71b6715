"""The worker: pools of consumers that fetch, run and acknowledge tasks."""
