"""The MLflow UI as a user sees it: `mlflow ui` (the README's command) on loopback, opened in
headless Chromium (Debian's `chromium`, driven by Playwright; no browser is downloaded).

A sweep's parent run and one child job with params, a metric curve and a generated mp4 with sound;
the test opens the child's page, checks its params, metrics and parent, opens the mp4 in the
artifact viewer and checks that Chromium decodes it (duration, frame size). Screenshots go to the
test's folder, and to $ASVA_SCREENSHOT_DIR when set (that is how docs/screenshots/ is refreshed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import require_executables
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from services.mlflow_server import stop_process_group, wait_until_healthy
from services.postgres import free_port

from asva.data.media import write_video
from asva.tracking.store import PARENT_TAG, ROLE_JOB, ROLE_SWEEP, ROLE_TAG, STUDY_TAG

pytestmark = pytest.mark.browser

# Loaded machines start the server and render the page slowly: generous limits, polled.
SERVER_START_S = 240
PAGE_LOAD_MS = 180_000
FPS, SECONDS, SAMPLE_RATE = 6, 2, 16000


@dataclass
class LoggedSweep:
    uri: str
    experiment_id: str
    parent_id: str
    child_id: str


def log_sweep(root: Path) -> LoggedSweep:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("window_radius", artifact_location=(root / "mlartifacts").as_uri())
    study = {STUDY_TAG: "window_radius"}
    parent = client.create_run(
        experiment, tags=study | {ROLE_TAG: ROLE_SWEEP}, run_name="window_radius-sweep"
    ).info.run_id
    child = client.create_run(
        experiment, tags=study | {ROLE_TAG: ROLE_JOB, PARENT_TAG: parent}, run_name="window_radius=1.5,seed=0"
    ).info.run_id
    params = {"dataset": "synthetic", "window_radius": "1.5", "audio_layers": "a:3-7-11", "seed": "0"}
    curve = [Metric("train_loss", 1.0 / (step + 1), 0, step) for step in range(20)]
    client.log_batch(
        child,
        metrics=[*curve, Metric("event_sync", 71.25, 0, 0)],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in study.items()],
    )
    # A moving bar with a 440 Hz tone, written as the jobs write their samples (H.264 + AAC).
    frames = np.zeros((FPS * SECONDS, 64, 64, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        frame[:, 5 * index : 5 * index + 6, 1] = 255
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE)
    sample = root / "clip_0001.mp4"
    write_video(sample, frames, FPS, tone.astype(np.float32), SAMPLE_RATE)
    client.log_artifact(child, str(sample), "samples")
    client.set_terminated(child)
    client.set_terminated(parent)
    return LoggedSweep(uri, experiment, parent, child)


@pytest.fixture
def mlflow_ui(tmp_path: Path) -> Iterator[tuple[str, LoggedSweep]]:
    require_executables("chromium")
    sweep = log_sweep(tmp_path)
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    # The README's command, bound to loopback, one worker (the test is its only user).
    command = [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        sweep.uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (tmp_path / "mlflow_ui.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, tmp_path / "mlflow_ui.log", timeout_s=SERVER_START_S)
        yield url, sweep
    finally:
        stop_process_group(server)
        log.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("ASVA_SCREENSHOT_DIR"):
        Path(os.environ["ASVA_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["ASVA_SCREENSHOT_DIR"]) / name)
    return path


def test_child_run_page_shows_params_metrics_and_plays_the_sample(
    mlflow_ui: tuple[str, LoggedSweep], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, sweep = mlflow_ui
    run_page = f"{url}/#/experiments/{sweep.experiment_id}/runs/{sweep.child_id}"
    with sync_api.sync_playwright() as playwright:
        # Debian's build, not a downloaded one; as root Chromium refuses to start sandboxed.
        sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=sandbox)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(run_page)
            page.get_by_text("window_radius=1.5,seed=0").first.wait_for(timeout=PAGE_LOAD_MS)
            page.get_by_text("Parameters (4)").wait_for(timeout=PAGE_LOAD_MS)
            page.get_by_text("window_radius-sweep").first.wait_for(
                timeout=PAGE_LOAD_MS
            )  # the parent, fetched after the run
            close_assistant = page.get_by_role("button", name="Close")
            if close_assistant.count():
                close_assistant.first.click()
            text = page.inner_text("body")
            for expected in (
                "window_radius",
                "1.5",
                "audio_layers",
                "a:3-7-11",
                "event_sync",
                "71.25",
                "window_radius-sweep",
            ):
                assert expected in text, f"{expected!r} not on the run page"
            assert save_screenshot(page, tmp_path, "mlflow_run_page.png").stat().st_size > 10_000

            page.goto(f"{run_page}/artifacts")
            page.get_by_text("samples", exact=True).first.wait_for(timeout=PAGE_LOAD_MS)
            page.get_by_text("samples", exact=True).first.click()
            page.get_by_text("clip_0001.mp4").first.click()
            video = page.locator("video").first
            video.wait_for(timeout=PAGE_LOAD_MS)
            page.wait_for_function("document.querySelector('video').readyState >= 1", timeout=PAGE_LOAD_MS)
            duration, width, height = page.evaluate(
                "(v => [v.duration, v.videoWidth, v.videoHeight])(document.querySelector('video'))"
            )
            assert duration == pytest.approx(SECONDS, abs=0.2) and (width, height) == (64, 64)
            assert save_screenshot(page, tmp_path, "mlflow_run_artifacts.png").stat().st_size > 10_000
        finally:
            browser.close()
