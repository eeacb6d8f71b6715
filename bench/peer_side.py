"""Run inside a peer's own venv (bench/venvs.py): the peer's adapter, through its own API.

    python -m bench.peer_side NAME info [PROCESSES]   -> {"commands": [...], "version": "..."}
    python -m bench.peer_side NAME fill N             -> {"filled": N}

One JSON line on stdout. The harness has reset the peer's database already.
"""

from __future__ import annotations

import json
import sys

from bench.adapters import load


def main(argv: list[str]) -> None:
    name, action, *rest = argv
    adapter = load(name)
    if isinstance(adapter, str):
        raise SystemExit(f"{name}: {adapter}")
    if action == "info":
        processes = int(rest[0]) if rest else 1
        print(json.dumps({"commands": adapter.worker_commands(processes, ["bench"]), "version": adapter.version()}))
    elif action == "fill":
        adapter.fill(int(rest[0]))
        print(json.dumps({"filled": int(rest[0])}))
    else:
        raise SystemExit(f"unknown action {action!r}: info or fill")


if __name__ == "__main__":
    main(sys.argv[1:])
