"""Redis: what promoting a due delayed message costs the server, against the delayed set's size.

    BENCH_REDIS=redis://127.0.0.1:N python -m bench.promotion [--sizes 20000,100000,1000000]
                                  [--due 20000] [--runs 3] [--against REV] [--out DIR]

For each size N the queue's delayed set holds N messages: ``--due`` of them come due at once,
the rest are due in an hour (they only make the set large). One consumer then fetches (64 at
a time, as a worker's grown batch) and acks until it has every due one, while the Redis
server's CPU (``INFO cpu``, user + system) is read before and after. The same loop over the
same number of messages published without an eta (the set still holding N - due) is the
control: promotion cost per task = (CPU with promotion - CPU of the control) / due. With
``--against REV`` the FETCH script of that git revision runs the same rounds, interleaved
(the broker code is the same; only the script differs), so old and new are compared in one
run. Use a private redis-server: the figures are the server's whole CPU.

Results: ``promotion.{md,json}`` in ``--out`` (default bench/results).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from bench import measure
from taskq.brokers.base import Publication
from taskq.brokers.redis import RedisBroker, entry
from taskq.brokers.redis import broker as broker_module
from taskq.brokers.redis.scripts import FETCH
from taskq.config import Settings
from taskq.envelope import Envelope

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUEUE = "promotion"
BATCH = 64  # a worker's grown fetch (worker_prefetch_max)
FILL_CHUNK = 10_000


def _fetch_script(rev: str) -> str:
    """The FETCH script as it was at git revision ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:taskq/brokers/redis/scripts.py"], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]).stdout  # fmt: skip
    scope: dict[str, Any] = {}
    exec(compile(source, f"{rev}:scripts.py", "exec"), scope)
    return str(scope["FETCH"])


def _cpu(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _envelope(i: int) -> Envelope:
    body = json.dumps([[float(i)], {}, {}]).encode()
    return Envelope({"task": "bench.due", "id": uuid.uuid4().hex, "lang": "py"}, body)


def _fill(client: redis.Redis, broker: RedisBroker, count: int) -> None:
    """``count`` delayed members in the broker's layout, due in an hour."""
    later = time.time() + 3600
    for start in range(0, count, FILL_CHUNK):
        pipe = client.pipeline(transaction=False)
        members = {b"0" + uuid.uuid4().hex[:16].encode() + entry.encode(_envelope(i)): later + i * 1e-3
                   for i in range(start, min(count, start + FILL_CHUNK))}  # fmt: skip
        pipe.zadd(broker.delayed_key(QUEUE), members)  # type: ignore[arg-type]
        pipe.execute()


def _drain(broker: RedisBroker, due: int) -> float:
    """Fetch and ack until ``due`` messages came; seconds it took."""
    got, started = 0, time.perf_counter()
    while got < due:
        batch = broker.fetch([QUEUE], BATCH, timeout=1.0)
        broker.ack(batch)
        got += len(batch)
    return time.perf_counter() - started


def one_round(url: str, size: int, due: int, script: str) -> dict[str, float]:
    """Server CPU µs per task of the promoted loop and of the control, with ``script`` as FETCH."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    broker_module.FETCH = script  # type: ignore[attr-defined]
    broker = RedisBroker(url, Settings())
    try:
        _fill(client, broker, size - due)
        at = time.time() + 1.0
        broker.publish_many([Publication(QUEUE, _envelope(i), at) for i in range(due)])
        time.sleep(max(0.0, at - time.time()) + 0.05)
        before = _cpu(client)
        promoted_s = _drain(broker, due)
        promoted = _cpu(client) - before
        if client.zcard(broker.delayed_key(QUEUE)) != size - due:
            raise RuntimeError("the delayed set lost or kept messages it should not have")
        broker.publish_many([Publication(QUEUE, _envelope(i)) for i in range(due)])
        before = _cpu(client)
        ready_s = _drain(broker, due)
        ready = _cpu(client) - before
    finally:
        broker.close()
        client.flushdb()
        client.close()
    return {
        "promoted_us": 1e6 * promoted / due,
        "ready_us": 1e6 * ready / due,
        "promotion_us": 1e6 * (promoted - ready) / due,
        "promoted_rate": due / promoted_s,
        "ready_rate": due / ready_s,
    }


def markdown(rows: list[dict[str, Any]], notes: list[str]) -> str:
    lines = [
        "| FETCH script | delayed set | due | server CPU µs/task, promoted | control (no eta) | promotion µs/task | "
        "fetch+ack tasks/s, promoted | control |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = ("promoted_us", "ready_us", "promotion_us", "promoted_rate", "ready_rate")
    for row in rows:
        cells = []
        for k in keys:
            values = [r[k] for r in row["runs"]]
            digits = 1 if k.endswith("_us") else 0
            mid = measure.median(values)
            cells.append(f"{mid:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})")
        lines.append(f"| {row['script']} | {row['size']:,} | {row['due']:,} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: median (min-max) over runs."] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.promotion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--sizes", default="20000,100000,1000000")
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", help="a git revision whose FETCH script runs the same rounds")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379").rstrip("/") + "/9"
    scripts = {"this tree": FETCH}
    if args.against:
        scripts[args.against] = _fetch_script(args.against)
    sizes = [int(s) for s in args.sizes.split(",")]
    command = " ".join(sys.argv[1:] if argv is None else argv)
    notes = [
        f"BENCH_REDIS={os.environ.get('BENCH_REDIS', '(unset)')} python -m bench.promotion {command}".rstrip(),
        f"load average at the start {', '.join(f'{v:.1f}' for v in os.getloadavg())}",
    ]
    rows = [{"script": name, "size": n, "due": args.due, "runs": []} for n in sizes for name in scripts]
    for run in range(args.runs):
        for n in sizes:
            names = list(scripts)
            for name in names[run % len(names) :] + names[: run % len(names)]:  # alternate who goes first
                result = one_round(url, n, args.due, scripts[name])
                next(r for r in rows if r["script"] == name and r["size"] == n)["runs"].append(result)
                print(f"  {name:>10} {n:>9,}: " + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()),
                      file=sys.stderr, flush=True)  # fmt: skip
    notes.append(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    text = markdown(rows, notes)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "promotion.md").write_text(text)
    (args.out / "promotion.json").write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
