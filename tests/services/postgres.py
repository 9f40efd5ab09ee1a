"""A throw-away PostgreSQL server for tests: initdb into a temp folder, loopback only, a free port.

Uses the Debian `postgresql` package's programs (/usr/lib/postgresql/<version>/bin, not on PATH).
PostgreSQL refuses to run as root, so under root it runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 60


@dataclass
class Postgres:
    port: int
    user: str
    start_seconds: float

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)


def bin_dir() -> Path | None:
    """The folder of initdb and postgres: the newest installed major version, else PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> dict:
    """Popen arguments that drop root to the `postgres` (else `nobody`) user."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid}
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@contextlib.contextmanager
def running_postgres(binaries: Path, user: str = "asva") -> Iterator[Postgres]:
    started = time.perf_counter()
    # Not under pytest's root-only temp folder: the unprivileged server must reach its data.
    home = Path(tempfile.mkdtemp(prefix="asva-postgres-"))
    data, sockets = home / "data", home / "sockets"
    sockets.mkdir()
    run_as = _run_as()
    if run_as:
        for path in (home, sockets):
            os.chown(path, run_as["user"], run_as["group"])
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    server = None
    try:
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            **run_as,
        )
        port = free_port()
        log = open(home / "postgres.log", "w")
        server = subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(sockets),
                # A test database: durability is not worth its fsyncs.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            **run_as,
        )
        _wait_until_accepting(port, user, server, home / "postgres.log")
        yield Postgres(port=port, user=user, start_seconds=time.perf_counter() - started)
    finally:
        if server is not None:
            server.terminate()  # smart shutdown: waits for clients, which have gone by now
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(home, ignore_errors=True)


def _wait_until_accepting(port: int, user: str, server: subprocess.Popen, log: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"postgres did not accept connections in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)
