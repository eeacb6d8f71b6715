"""Runs every row for every library, interleaved (A B C A B C ...) so drift hits all alike."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence

from bench import measure
from bench.adapters.base import LATENCY_KEY, QUEUE, Adapter, queue_names
from bench.plan import LATENCY_GAP, PROCESSES, SCALING_PROCESSES, SCALING_QUEUES, Plan
from bench.results import Results

ROUND_TRIP_CALLS = 200  # enqueue calls watched for their round trips (separately from the timing)
SETTLE = 1.0  # seconds an idle worker gets after warm-up before its RSS is read
BASELINES = ("raw",)  # not a peer: never scaled as one, never "best peer"
PHASE_ROWS = {
    "enqueue": ["enqueue_one", "round_trips", "enqueue_bulk"],
    "drain_plain": ["drain"],
    "drain_with_results": ["drain_results"],
    "idle": ["rss", "pss", "latency_p50", "latency_p95", "latency_p99"],
    "scaling": ["scale_p1", "scale_p2", "scale_p4", "scale_q4", "scale_q16"],
    "memory": ["memory_info", "memory_keys"],
}


class Runner:
    def __init__(self, plan: Plan, adapters: dict[str, Adapter], results: Results, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.adapters = adapters
        self.results = results
        self.log = log

    # -- orchestration -------------------------------------------------------------------

    def run(self) -> Results:
        for phase in (self.enqueue, self.drain_plain, self.drain_with_results, self.idle):
            for run in range(self.plan.runs):
                for name in self._rotated(run):
                    self._guarded(name, phase)
        for name in self.adapters:
            if name in ("taskq", *BASELINES) or self.plan.scaling_peers:
                self._guarded(name, self.scaling)
        for name in self.adapters:
            self._guarded(name, self.memory)
        return self.results

    def _rotated(self, run: int) -> list[str]:
        names = list(self.adapters)
        shift = run % len(names) if names else 0
        return names[shift:] + names[:shift]

    def _guarded(self, name: str, phase: Callable[[str, Adapter], None]) -> None:
        adapter = self.adapters[name]
        started = time.monotonic()
        try:
            phase(name, adapter)
        except Exception as exc:  # one library failing must not stop the others' rows
            message = f"{type(exc).__name__}: {exc}"
            for row in PHASE_ROWS[phase.__name__]:
                self.results.fail(row, name, message)
            self.log(f"  {name} {phase.__name__}: FAILED {message}")
            self.log("".join(traceback.format_exception(exc)[-3:]).rstrip())
        finally:
            adapter.stop_workers()
            adapter.reset()
        self.log(f"  {name} {phase.__name__}: {time.monotonic() - started:.1f}s")

    def _record(self, row: str, name: str, value: float) -> None:
        self.results.add(row, name, value)
        self.log(f"  {name:9} {row:14} {value:,.1f}")

    # -- phases --------------------------------------------------------------------------

    def enqueue(self, name: str, adapter: Adapter) -> None:
        adapter.reset()
        n = self.plan.enqueue_one
        self._record("enqueue_one", name, n / measure.timed(lambda: adapter.enqueue_one(n)))
        self._check_queued(adapter, n)
        adapter.reset()
        calls = min(n, ROUND_TRIP_CALLS)
        self._record("round_trips", name, measure.count_round_trips(lambda: adapter.enqueue_one(calls)) / calls)
        if adapter.bulk_api:
            adapter.reset()
            n = self.plan.enqueue_bulk
            self._record("enqueue_bulk", name, n / measure.timed(lambda: adapter.enqueue_bulk(n)))
            self._check_queued(adapter, n)

    def drain_plain(self, name: str, adapter: Adapter) -> None:
        self._record("drain", name, self._drain(adapter, PROCESSES, [QUEUE], with_results=False))

    def drain_with_results(self, name: str, adapter: Adapter) -> None:
        self._record("drain_results", name, self._drain(adapter, PROCESSES, [QUEUE], with_results=True))

    def idle(self, name: str, adapter: Adapter) -> None:
        """Idle RSS after warm-up, then latency of stamp tasks sent LATENCY_GAP apart."""
        adapter.reset()
        adapter.start_workers(PROCESSES)
        warmup = 4 * PROCESSES
        for _ in range(warmup):
            adapter.enqueue_stamp()
        self._wait_latencies(adapter, warmup, "warm-up tasks")
        time.sleep(SETTLE)
        adapter.workers.check_alive()
        self._record("rss", name, measure.tree_rss(adapter.workers.pids) / 1e6)
        self._record("pss", name, measure.tree_pss(adapter.workers.pids) / 1e6)
        adapter.redis.delete(LATENCY_KEY)
        n = self.plan.latency
        next_send = time.perf_counter()
        for _ in range(n):
            adapter.enqueue_stamp()
            next_send += LATENCY_GAP
            time.sleep(max(0.0, next_send - time.perf_counter()))
        self._wait_latencies(adapter, n, "stamp tasks")
        latencies = [float(v) * 1000 for v in adapter.redis.lrange(LATENCY_KEY, 0, -1)]
        for q in (50, 95, 99):
            self._record(f"latency_p{q}", name, measure.percentile(latencies, q))

    def scaling(self, name: str, adapter: Adapter) -> None:
        n = self.plan.drain_slow if adapter.slow_drain else self.plan.scaling
        for processes in SCALING_PROCESSES:
            self._record(f"scale_p{processes}", name, self._drain(adapter, processes, [QUEUE], False, n))
        if adapter.multi_queue:
            for count in SCALING_QUEUES[1:]:
                rate = self._drain(adapter, PROCESSES, queue_names(count), False, n)
                self._record(f"scale_q{count}", name, rate)

    def memory(self, name: str, adapter: Adapter) -> None:
        adapter.reset()
        n = self.plan.memory
        before = self._used_memory(adapter)
        adapter.fill(n)
        after = self._used_memory(adapter)
        self._check_queued(adapter, n)
        self._record("memory_info", name, (after - before) / n)
        self._record("memory_keys", name, self._keys_memory(adapter) / n)

    # -- helpers -------------------------------------------------------------------------

    def _drain(
        self, adapter: Adapter, processes: int, queues: Sequence[str], with_results: bool, n: int | None = None
    ) -> float:
        if n is None:
            n = self.plan.drain_slow if adapter.slow_drain else self.plan.drain
        adapter.reset()
        adapter.fill(n, queues, with_results)
        self._check_queued(adapter, n, queues)
        adapter.start_workers(processes, with_results, queues)
        try:
            return measure.drain_rate(lambda: adapter.remaining(queues), n, self.plan.timeout)
        except measure.BenchTimeout:
            adapter.workers.check_alive()  # a dead worker explains the timeout better
            raise
        finally:
            adapter.stop_workers()

    def _wait_latencies(self, adapter: Adapter, n: int, what: str) -> None:
        def done() -> bool:
            adapter.workers.check_alive()
            return int(adapter.redis.llen(LATENCY_KEY)) >= n

        measure.wait_until(done, self.plan.timeout, what)

    @staticmethod
    def _check_queued(adapter: Adapter, n: int, queues: Sequence[str] = (QUEUE,)) -> None:
        queued = adapter.remaining(queues)
        if queued != n:
            raise RuntimeError(f"expected {n} queued tasks, the library reports {queued}")

    @staticmethod
    def _used_memory(adapter: Adapter) -> float:
        # Let lazy frees and other clients' short-lived keys settle; the shared server also
        # serves the test suites, so memory_keys (this database's own keys) is the cross-check.
        time.sleep(0.2)
        return float(adapter.redis.info("memory")["used_memory"])

    @staticmethod
    def _keys_memory(adapter: Adapter) -> float:
        total = 0
        batch: list[bytes] = []
        for key in adapter.redis.scan_iter(count=1000):
            batch.append(key)
            if len(batch) == 1000:
                total += _usage(adapter, batch)
                batch = []
        return float(total + _usage(adapter, batch))


def _usage(adapter: Adapter, keys: list[bytes]) -> int:
    pipe = adapter.redis.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(int(v or 0) for v in pipe.execute())
