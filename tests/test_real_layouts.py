"""A job on each real dataset layout, end to end through the sweep entry point, then the tables.

The datasets are built here, tiny: real mp4 files (moving shapes over drifting stripes with sensor
noise, and a tone with noise bursts on two different stereo channels at 44.1 or 48 kHz), 4 s
long, at 25 or 30 FPS, not square, and without event times (no manifest.csv), as the real
datasets come. Such a job computes what needs no event times and no open-class clips, says in
one log line what it skipped, and finishes (issue 13: every real-data job used to crash in
evaluation, after training).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import REPO, TINY_OVERRIDES, job_env, path_overrides

from asva.data.curated_manifest import ManifestRow, write_curated_manifest
from asva.data.media import write_video

CLASSES = ("dog_barking", "hammer")
SECONDS = 4.0  # three distinct protocol clips of 2 s per test video
WIDTH, HEIGHT = 64, 48  # center-cropped to a square, then resized to data.frame_size
FRAME_SIZE = 32  # the tiny model's size: TINY_OVERRIDES train it in seconds


def footage(rng: np.random.Generator, seconds: float, fps: int) -> np.ndarray:
    """[T, H, W, 3] uint8: a bright disc on its own path over stripes drifting in their own direction."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH] / WIDTH
    angle, frequency, drift = rng.uniform(0, np.pi), rng.uniform(1.5, 4), rng.uniform(0.2, 0.6)
    colour = rng.uniform(60, 200, 3)
    along = np.cos(angle) * xx + np.sin(angle) * yy
    start, turn = rng.uniform(0.2, 0.8, 2), rng.uniform(1, 3, 2)
    frames = []
    for t in np.arange(round(seconds * fps)) / fps:
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (frequency * along + drift * t))
        centre = start + 0.25 * np.sin(turn * t)
        disc = (xx - centre[0]) ** 2 + (yy - centre[1] * HEIGHT / WIDTH) ** 2 < 0.012
        image = stripes[..., None] * colour + 70 * disc[..., None] + rng.normal(0, 6, (HEIGHT, WIDTH, 3))
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(frames)


def sound(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """[2, samples]: a tone on both channels, decaying noise bursts louder on the right one."""
    count = round(seconds * sample_rate)
    tone = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 800) * np.arange(count) / sample_rate)
    bursts = np.zeros(count)
    burst = sample_rate // 10
    for onset in rng.uniform(0, seconds - 0.1, 4):
        first = int(onset * sample_rate)
        bursts[first : first + burst] += rng.normal(0, 0.3, burst) * np.exp(-np.arange(burst) / (sample_rate / 50))
    return np.stack([tone + 0.6 * bursts, 0.7 * tone + bursts]).astype(np.float32)


def write_clip(path: Path, seed: int, sample_rate: int, fps: int, seconds: float = SECONDS) -> None:
    rng = np.random.default_rng(seed)
    write_video(path, footage(rng, seconds, fps), fps, sound(rng, seconds, sample_rate), sample_rate)


def write_release_layout(root: Path, per_split: dict[str, int], sample_rate: int, fps: int, seed: int) -> None:
    """The AVSync15/48 release layout: classes.txt, <split>.txt and videos/<class>/<id>.mp4; each
    video's seed is in its id, so ids differ between the benchmark and a pool built apart."""
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split, per_class in per_split.items():
        lines = []
        for label in CLASSES:
            for _ in range(per_class):
                lines.append(f"{label}/{label}_{seed:04d}.mp4")
                write_clip(root / "videos" / lines[-1], seed, sample_rate, fps)
                seed += 1
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


def write_vggsound_pool(root: Path, sample_rate: int, fps: int, seed: int) -> None:
    """VGGSound's CSV (no header) and its clips: four cut to their labelled 10 s, one whole video
    read from its labelled second, one row never downloaded, one of the test split."""
    rows = []
    for index, label in enumerate(("dog barking", "hammering", "dog barking", "hammering")):
        youtube_id, start = f"vid{index:08d}", 30 * index
        write_clip(root / "video" / f"{youtube_id}_{start:06d}.mp4", seed + index, sample_rate, fps)
        rows.append([youtube_id, start, label, "train"])
    write_clip(root / "video" / "wholevideo0.mp4", seed + 10, sample_rate, fps, seconds=5.0)
    rows += [
        ["wholevideo0", 1, "hammering", "train"],
        ["notfetched0", 20, "dog barking", "train"],
        ["testsplit00", 0, "hammering", "test"],
    ]
    with open(root / "vggsound.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


@dataclass(frozen=True)
class Layout:
    dataset: str
    sample_rate: int
    fps: int  # of the source videos; the job resamples them to 6
    pool_format: str  # avsync (the release layout) | vggsound (CSV and clips) | manifest (curated, CSV)
    overrides: tuple[str, ...]  # beyond the data and the tiny settings
    skipped_files: int  # pool rows the job cannot read

    def build(self, root: Path) -> list[str]:
        """Write the benchmark and its pool under `root`; returns the job's data overrides."""
        write_release_layout(root / self.dataset, {"train": 2, "test": 1}, self.sample_rate, self.fps, seed=0)
        overrides = [f"data={self.dataset}", f"data.root={root / self.dataset}", f"data.pool_root={root / 'pool'}"]
        if self.pool_format == "vggsound":
            write_vggsound_pool(root / "pool", self.sample_rate, self.fps, seed=100)
            overrides += ["data.pool_format=vggsound", "data.pool_csv=vggsound.csv"]
        else:
            write_release_layout(root / "pool", {"train": 2}, self.sample_rate, self.fps, seed=100)
        if self.pool_format == "manifest":  # curated apart (sweeps/curate.py): a kept segment per video
            videos = sorted((root / "pool" / "videos").rglob("*.mp4"))
            rows = [ManifestRow(v.stem, v.parent.name, v, 0.5, SECONDS - 0.5) for v in videos]
            write_curated_manifest(root / "manifest.csv", rows)
            overrides = [*overrides[:2], f"data.pool_manifest={root / 'manifest.csv'}"]
        return [*overrides, f"data.frame_size={FRAME_SIZE}"]


LAYOUTS = {
    "avsync15-release-pool": Layout("avsync15", 44100, 25, "avsync", (), skipped_files=0),
    # Stage 1 on the VGGSound pool too (uncurated: the curation filters are calibrated on the embedded pool).
    "avsync48-vggsound-pool": Layout(
        "avsync48", 48000, 30, "vggsound", ("pretrain=true", "curation=none"), skipped_files=1
    ),
    # Stage 1 on a curated manifest: trained on its segments, never curated again.
    "avsync15-curated-manifest": Layout(
        "avsync15", 44100, 25, "manifest", ("pretrain=true", "curation=auto"), skipped_files=0
    ),
}

SKIP_LINE = re.compile(r"evaluation of (\w+): not computed: (.*)")
EXPECTED = {
    "fd_pixel_synth",
    "fd_pixel_synth_null_audio",
    "fd_pixel_synth_ref_static",
    "fvd_embedded",
    "fvd_embedded_ref_static",
    *(
        f"{name}_embedded{row}"
        for name in ("ia", "it", "relsync", "alignsync")
        for row in ("", "_ref_groundtruth", "_ref_static")
    ),
}


def run_script(script: str, args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args, f"hydra.run.dir={workdir / 'outputs' / Path(script).stem}"],
        cwd=workdir,
        env=job_env(workdir),
        capture_output=True,
        text=True,
        timeout=600,
    )


def skip_lines(output: str) -> dict[str, str]:
    """Dataset -> the metrics its evaluation did not compute, as logged (Hydra logs to stdout)."""
    return {match.group(1): match.group(2) for match in SKIP_LINE.finditer(output)}


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_job_on_a_real_layout_finishes_and_is_tabulated(tmp_path, name):
    layout = LAYOUTS[name]
    data = layout.build(tmp_path / "data")
    result = run_script(
        "sweeps/window_radius.py",
        ["window_radius=0.5", *data, *layout.overrides, *TINY_OVERRIDES, *path_overrides(tmp_path)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    client = mlflow.MlflowClient(tracking_uri=job_env(tmp_path)["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("window_radius").experiment_id])
    [job] = [run for run in runs if run.data.tags.get("asva.role") == "job"]
    assert job.info.status == "FINISHED"
    pretrain = "pretrain=true" in layout.overrides
    assert {
        key: job.data.params[key]
        for key in ("dataset", "fps", "window_radius", "audio_layers", "k", "pretrain", "curation", "finetune", "seed")
    } == {
        "dataset": layout.dataset,
        "fps": "6",
        "window_radius": "0.5",
        "audio_layers": "a:11",
        "k": "all",
        "pretrain": str(pretrain).lower(),
        "curation": "auto" if "curation=auto" in layout.overrides else "none",
        "finetune": "true",
        "seed": "0",
    }
    metrics = job.data.metrics
    assert EXPECTED <= set(metrics), sorted(EXPECTED - set(metrics))
    assert metrics["num_test_clips"] == 3 * len(CLASSES)  # 3 protocol clips per 4-s test video
    assert metrics["data_skipped_files"] == layout.skipped_files
    assert not [metric for metric in metrics if metric.startswith("event_sync") or metric.endswith("_openclass")]
    pretrain_runs = [run.data.params["pretrain_key"] for run in runs if run.data.tags.get("asva.role") == "pretrain"]
    assert pretrain_runs == ([job.data.tags["asva.pretrain_key"]] if pretrain else [])
    artifacts = Path(job.info.artifact_uri.removeprefix("file://"))
    assert len(list((artifacts / "samples").glob("*.mp4"))) == 1

    skipped = skip_lines(result.stdout + result.stderr)[layout.dataset]
    assert (
        "event_sync, event_sync_null_audio, event_sync_ref_groundtruth, event_sync_ref_static (no clip has ground-truth event times"
        in skipped
    )
    assert f"*_openclass ({layout.dataset} has no open-class split" in skipped

    tables = subprocess.run(
        [
            sys.executable,
            "analysis/make_tables.py",
            "--study",
            "window_radius",
            "--only",
            "fig4b",
            "--format",
            "csv",
            "--out",
            str(tmp_path / "tables"),
        ],
        cwd=REPO,
        env=job_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tables.returncode == 0, tables.stderr[-3000:]
    main = tables.stdout.split(f"#### {layout.dataset}; n = 1 per row\n\n", 1)[1]
    columns = [cell.strip() for cell in main.splitlines()[0].strip("|").split("|")]
    assert columns == ["Radius (1/FPS)", "FVD* ↓", "IA* ↑", "IT* ↑", "RelSync* ↑", "AlignSync* ↑"]
    assert re.search(r"^\| 0\.5 +\| ", main, re.MULTILINE), tables.stdout
    assert "FD-pixel* ↓" in tables.stdout.split(f"#### {layout.dataset}: other metrics; n = 1 per row", 1)[1]
    assert not [line for line in tables.stdout.splitlines() if line.startswith("|") and "EventSync" in line]

    # The stand-alone evaluation of the same job (sweeps/evaluate.py) skips alike and logs to its run.
    networks = [override for override in TINY_OVERRIDES if override.startswith("eval.networks.")]
    evaluation = run_script(
        "sweeps/evaluate.py", [f"run_id={job.info.run_id}", *networks, *path_overrides(tmp_path)], tmp_path
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert skip_lines(evaluation.stdout + evaluation.stderr)[layout.dataset].startswith(
        "event_sync, event_sync_ref_groundtruth (no clip has ground-truth event times"
    )
    evaluated = client.get_run(job.info.run_id).data.metrics
    assert evaluated["num_eval_clips"] == 3 * len(CLASSES) and "relsync_embedded" in evaluated
    assert not [metric for metric in evaluated if metric.startswith("event_sync")]
