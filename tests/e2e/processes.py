"""Running `recouvrement serve` replicas in tests: start, wait, kill, read their output."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from tests.e2e.redmine_admin import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds: float, what: str, every: float = 0.3):
    """Wait (bounded) for the running service to do its asynchronous work."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"délai dépassé : {what}")


class Replica:
    """One `recouvrement serve` process on a free port; its output goes to a file."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile("w+", prefix="serve-", suffix=".log", delete=False)
        self.process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                                        cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def health(self) -> dict | None:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).json()
        except httpx.TransportError:
            return None

    def wait_up(self) -> Replica:
        wait_for(lambda: self.health() or self.process.poll() is not None, 60, "démarrage de recouvrement serve")
        assert self.process.poll() is None, self.output()
        return self

    def kill(self) -> None:
        """kill -9: no clean-up of any kind (the lease is not given back)."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, seconds: float = 30) -> str:
        """SIGTERM (a clean stop: the lease given back), then SIGKILL after ``seconds``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()

    def output(self) -> str:
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as log:
            return log.read()
