"""A worker process that claims and then dies by SIGKILL, for the tests of claim recovery."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable


def claim_then_die(claim: Callable[[], bool]) -> float:
    """Run ``claim`` in a forked child (True: it holds its claims), SIGKILL the child once it
    has, and return when it claimed (time.time())."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, b"claimed" if claim() else b"nothing")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 16) == b"claimed"
        return time.time()
    finally:
        os.close(read)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
