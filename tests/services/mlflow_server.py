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
            [str(mlflow), "server", "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(artifacts),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server, log)
        yield MlflowServer(url=url, artifacts=artifacts, start_seconds=time.perf_counter() - started)
    finally:
        # The server runs its web workers as children, all in the session started for it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
