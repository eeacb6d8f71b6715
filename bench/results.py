"""The rows the harness measures and the samples it collected for each library."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    headline: bool = False  # measured in every run (the others once)


ROWS = [
    Row("enqueue_one", "enqueue, one call per task", "tasks/s", True, headline=True),
    Row("enqueue_bulk", "enqueue, bulk API", "tasks/s", True, headline=True),
    Row("round_trips", "Redis round trips per single enqueue call", "trips", False),
    Row("drain", "drain, 2 processes, no results", "tasks/s", True, headline=True),
    Row("drain_results", "drain, 2 processes, results stored", "tasks/s", True, headline=True),
    Row("latency_p50", "latency p50 (idle worker, 5 ms apart)", "ms", False, headline=True),
    Row("latency_p95", "latency p95", "ms", False, headline=True),
    Row("latency_p99", "latency p99", "ms", False, headline=True),
    Row("rss", "idle worker RSS, process tree, 2 processes", "MB", False, headline=True),
    Row("pss", "idle worker PSS (shared pages split), process tree", "MB", False, headline=True),
    Row("scale_p1", "scaling: drain, 1 process", "tasks/s", True),
    Row("scale_p2", "scaling: drain, 2 processes", "tasks/s", True),
    Row("scale_p4", "scaling: drain, 4 processes", "tasks/s", True),
    Row("scale_q4", "scaling: drain, 2 processes, 4 queues", "tasks/s", True),
    Row("scale_q16", "scaling: drain, 2 processes, 16 queues", "tasks/s", True),
    Row("memory_info", "Redis memory per queued task (INFO used_memory delta)", "bytes", False),
    Row("memory_keys", "Redis memory per queued task (MEMORY USAGE of its keys)", "bytes", False),
    Row("mq_single", "many queues: drain, 1 queue, 2 processes", "tasks/s", True, headline=True),
    Row("mq_many", "many queues: drain, tasks spread over all queues", "tasks/s", True, headline=True),
    Row("mq_ratio", "many queues: spread drain as % of the 1-queue drain", "%", True, headline=True),
    Row("mq_idle_calls", "many queues: Redis commands/s of an idle worker on all of them", "calls/s", False),
    Row("mq_idle_cpu", "many queues: Redis CPU of that idle worker", "ms/s", False),
    Row("result_bytes", "Redis memory per stored result (MEMORY USAGE)", "bytes", False),
]
ROW_BY_KEY = {row.key: row for row in ROWS}


@dataclass
class Results:
    libraries: list[str]
    status: dict[str, str] = field(default_factory=dict)  # library -> version, or why skipped
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # row -> library -> values
    errors: dict[str, dict[str, str]] = field(default_factory=dict)  # row -> library -> message
    notes: list[str] = field(default_factory=list)

    def add(self, row: str, library: str, value: float) -> None:
        self.samples.setdefault(row, {}).setdefault(library, []).append(value)

    def fail(self, row: str, library: str, message: str) -> None:
        self.errors.setdefault(row, {})[library] = message

    def values(self, row: str, library: str) -> list[float]:
        return self.samples.get(row, {}).get(library, [])

    def error(self, row: str, library: str) -> str | None:
        return self.errors.get(row, {}).get(library)
