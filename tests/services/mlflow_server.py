"""An MLflow tracking server for tests: PostgreSQL as its backend store, artifacts proxied by it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from services.postgres import free_port

START_TIMEOUT_S = 180


@dataclass
class MlflowServer:
    url: str
    artifacts: Path
    start_seconds: float


@contextlib.contextmanager
def running_mlflow_server(backend_store_uri: str, artifacts: Path, log: Path) -> Iterator[MlflowServer]:
    started = time.perf_counter()
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                backend_store_uri,
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, log)
        yield MlflowServer(url=url, artifacts=artifacts, start_seconds=time.perf_counter() - started)
    finally:
        stop_process_group(server)


def stop_process_group(server: subprocess.Popen) -> None:
    """Stop an MLflow server and its web workers (children in the session started for it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Return once `url`/health answers 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow not healthy on {url} after {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
