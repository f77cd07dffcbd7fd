"""A PostgreSQL server of a test's own (Debian's binaries, a data directory in /tmp, a free
port), which the test may restart at will without touching the shared test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.processes import free_port


def _binaries() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    assert versions, "PostgreSQL absent : lancer scripts/postgres-local.sh"
    return versions[-1]


class PrivatePostgres:
    def __init__(self, _tmp_path: Path):
        self.bin = _binaries()
        self.port = free_port()
        # /tmp itself: the server runs as `postgres` when we are root, and cannot enter pytest's dirs.
        self.data = Path(tempfile.mkdtemp(prefix="recouvrement-pg-"))
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _ctl(self, action: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data / "db"), "-w", "-m", "fast", "-l", str(self.data / "log"),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}")

    def __enter__(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data / "db"), "-A", "trust", "-U", "postgres")
        self._ctl("start")
        return self

    def restart(self) -> None:
        self._ctl("restart")

    def __exit__(self, *exc) -> None:
        self._ctl("stop")
        shutil.rmtree(self.data, ignore_errors=True)
