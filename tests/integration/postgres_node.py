"""A throwaway PostgreSQL server for tests that need server settings the shared one lacks
(pg_stat_statements preloaded, to count the statements a worker sends).

It has its own data folder, port and socket folder, is owned by the ``postgres`` user when
this process is root (initdb refuses root), and is stopped and deleted at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.servers import IN_CI, free_port

BIN = Path("/usr/lib/postgresql")


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(BIN.glob("*/bin/initdb")) if BIN.exists() else []
    return versions[-1].parent if versions else None


class ThrowawayPostgres:
    def __init__(self, *settings: str) -> None:
        bin_dir = _bin_dir()
        as_root = os.geteuid() == 0
        try:
            user = pwd.getpwnam("postgres") if as_root else None
        except KeyError:
            user = None
        if bin_dir is None or (as_root and user is None):
            reason = "a throwaway PostgreSQL needs initdb (and the postgres user when run as root)"
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)
        self.folder = Path(tempfile.mkdtemp(prefix="taskq-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._prefix = ["runuser", "-u", "postgres", "--"] if user is not None else []
        if user is not None:
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run(str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        options = [f"-c port={self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.folder}",
                   *(f"-c {s}" for s in settings)]
        self._command = [*self._prefix, str(bin_dir / "postgres"), "-D", str(self.data), *" ".join(options).split()]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("throwaway PostgreSQL did not start") from None
                time.sleep(0.1)

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._prefix, *cmd], check=True, capture_output=True, timeout=120)

    def database_url(self, name: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + name

    def restart(self) -> None:
        """Fast shutdown (every client is disconnected), then start again on the same data."""
        self.shutdown()
        self.start()

    def crash(self) -> None:
        """SIGKILL the postmaster and its backends (the server's own processes, by pid): what
        was only in shared memory — WAL not yet written — is lost, as in a real crash."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        for pid in [postmaster, *map(int, children)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(20)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() for pid in map(int, children)) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)

    def shutdown(self) -> None:
        if self.process.poll() is None:
            # Fast shutdown, sent to the postmaster itself: runuser does not pass SIGINT on.
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
