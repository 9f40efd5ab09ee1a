"""Memory and start-up time of stage 1 against the pool's size: streamed pools stay flat (CPU).

    python benchmarks/bench_data_scale.py [--sizes 500 5000] [--steps 4] [--batch 8] [--workers 2]

Builds (not timed) pools of 10-s synthetic videos in the AVSync15 release layout, one per size: a few
distinct videos (sound and picture of their own) written once and hard-linked under as many ids as the
size asks, so a 5,000-video pool costs little disk. Then, for each pool in a fresh process (so peak
memory is that pool's alone): read the split as a job does (`data.decode=stream`), build the tiny
model with random weights (no stand-in training: only the data path is measured) and run `--steps`
stage-1 steps of `--batch` clips through the DataLoader with `--workers` workers. Reported per pool:

  first_step_s   process start to the end of the first training step (reading the split included)
  peak_rss_mib   the training process's peak resident memory (ru_maxrss; workers are processes of
                 their own and hold only what they decode)
  clips_per_s    loader throughput alone (decode, resize, resample, filterbank) at 0, 1, 2 workers

and the ratios of the largest pool to the smallest (goals: peak RSS <= 1.15, first step <= 1.5).
Hard links mean the page cache holds the few distinct files: the disk is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

DISTINCT_VIDEOS = 8
SECONDS, SOURCE_FPS, SOURCE_SIZE, SOURCE_RATE = 10.0, 12, 96, 44100
CLASSES = ("drum", "bell")


def write_sources(folder: Path) -> list[Path]:
    """DISTINCT_VIDEOS 10-s videos: moving squares and tones of their own, 44.1 kHz stereo."""
    from asva.data.media import write_video

    paths = []
    for index in range(DISTINCT_VIDEOS):
        rng = np.random.default_rng(index)
        count = round(SECONDS * SOURCE_FPS)
        frames = np.full((count, SOURCE_SIZE, SOURCE_SIZE, 3), rng.integers(0, 200, 3), dtype=np.uint8)
        for t in range(count):
            x = (t * (index + 1)) % (SOURCE_SIZE - 16)
            frames[t, 20:36, x : x + 16] = 255
        time_axis = np.arange(round(SECONDS * SOURCE_RATE)) / SOURCE_RATE
        tone = 0.2 * np.sin(2 * np.pi * (220 + 55 * index) * time_axis).astype(np.float32)
        path = folder / f"source{index}.mp4"
        write_video(path, frames, SOURCE_FPS, np.stack([tone, tone]), SOURCE_RATE)
        paths.append(path)
    return paths


def build_pool(root: Path, size: int, sources: list[Path]) -> None:
    """`size` videos in the release layout, hard links to the distinct sources (skipped if built)."""
    if (root / "train.txt").is_file():
        return
    lines = []
    for index in range(size):
        label = CLASSES[index % len(CLASSES)]
        line = f"{label}/{label}_{index:06d}.mp4"
        target = root / "videos" / line
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[index % len(sources)], target)
        lines.append(line)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "test.txt").write_text(lines[0] + "\n")
    (root / "train.txt").write_text("\n".join(lines) + "\n")


def measure(root: Path, steps: int, batch: int, workers: int) -> dict:
    """In this (fresh) process: the first stage-1 step's time, the loader's throughput, the peak RSS."""
    started = time.perf_counter()
    import torch

    from asva.config.schema import DataConfig, DiffusionConfig, ModelConfig, StageConfig
    from asva.data.dataset import load_split
    from asva.data.loader import StepDraws, clip_loader
    from asva.models.asva_model import ASVAModel, ImageToVideoBase
    from asva.models.audio_encoders import TinyAudioEncoder
    from asva.training.adapters import train_adapter_stage

    torch.set_num_threads(1)
    data = DataConfig(name="avsync15", root=str(root), decode="stream", num_workers=workers)
    pool = load_split(root, "train", data, root / "cache")
    model_cfg = ModelConfig()
    torch.manual_seed(0)
    encoders = {"a": TinyAudioEncoder("tiny_semantic", 2, 64, 0.04, num_classes=len(CLASSES))}
    model = ASVAModel(ImageToVideoBase(model_cfg), encoders, [("a", 1)], 1.5, data.fps, model_cfg, fbank_frames=198)
    first_step: list[float] = []

    def on_step(step: int, loss: float) -> None:
        if not first_step:
            first_step.append(time.perf_counter() - started)

    stage = StageConfig(lr=1e-4, batch_size=batch, steps=steps, checkpoint_minutes=None)
    train_adapter_stage(model, pool, stage, DiffusionConfig(), 0, "stage 1", data=data, on_step=on_step)
    throughput = {}
    for count in (0, 1, 2):
        draws = StepDraws(len(pool), batch, seed=1, first_step=0, total_steps=steps + 1, data_parallel=False)
        loader = iter(clip_loader(pool.windows, data.sample_rate, draws, count, data.prefetch_factor, False))
        next(loader)  # workers started and warm
        tick = time.perf_counter()
        read = sum(len(batch_read.rows) for batch_read in loader)
        throughput[str(count)] = round(read / (time.perf_counter() - tick), 1)
    return {
        "videos": len(pool),
        "first_step_s": round(first_step[0], 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "clips_per_s_by_workers": throughput,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/asva_bench_data_scale"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: one pool, this process
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.steps, args.batch, args.workers)))
        return
    sources_folder = args.folder / "sources"
    sources_folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(sources_folder.glob("*.mp4")) or write_sources(sources_folder)
    results = []
    for size in args.sizes:
        root = args.folder / f"pool{size}"
        build_pool(root, size, sources)
        command = [
            sys.executable,
            __file__,
            "--measure",
            str(root),
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--workers",
            str(args.workers),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    print("| videos | first step (s) | peak RSS (MiB) | loader clips/s at 0 / 1 / 2 workers |")
    print("| --- | --- | --- | --- |")
    for result in results:
        rates = " / ".join(str(result["clips_per_s_by_workers"][k]) for k in ("0", "1", "2"))
        print(f"| {result['videos']} | {result['first_step_s']} | {result['peak_rss_mib']} | {rates} |")
    small, large = results[0], results[-1]
    print(
        f"\nratio {large['videos']} / {small['videos']} videos: peak RSS "
        f"{large['peak_rss_mib'] / small['peak_rss_mib']:.3f} (goal <= 1.15), first step "
        f"{large['first_step_s'] / small['first_step_s']:.3f} (goal <= 1.5)"
    )


if __name__ == "__main__":
    main()
