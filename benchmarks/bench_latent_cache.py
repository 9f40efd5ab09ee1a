"""Stage step time with the latent cache against the first stage on the fly, side by side; cache size.

    python benchmarks/bench_latent_cache.py [--steps 6] [--threads 2]

Two models, each with random weights (only time is measured), each trained on the same in-memory
set of 4-s videos twice per arm, alternating (on the fly, cached, on the fly, cached), with the
same draws, so both arms do the same work but the first stage:

  embedded   the embedded default: tiny UNet, patch-autoencoder first stage, stand-in audio
             encoders, 32-px frames, batch 16 (the embedded recipe)
  paper      the paper model's classes at test width (model.paper_width=tiny: DynamiCrafter UNet,
             its KL VAE, OpenCLIP, Resampler; ImageBind audio), 64-px frames (32 x 32 latents, the
             paper's latent grid at 256 px), batch 2

Per model: the cache is prepared first (asva/prepare_job.py `prepare_shard`, timed), then the
median step time (data, encoding, forward, backward, Adam; the first step of each run left out) of
each arm and their ratio (goal <= 0.6). Then the cache's disk size per 1,000 videos at 256 px
(DynamiCrafter 256 latents: 4 x 32 x 32 per frame, fp16) for 6 and 12 FPS, computed, and checked
against the bytes per frame of the paper arm's shard file (its latents have that shape). Last, the
full-width VAE's encoding of one 256-px frame on this CPU (time and FLOPs), what a GPU run scales.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from asva.config.schema import DataConfig, DiffusionConfig, ModelConfig, StageConfig  # noqa: E402
from asva.data.dataset import ClipSet  # noqa: E402
from asva.data.latent_cache import NPY_HEADER_BYTES  # noqa: E402
from asva.data.windows import VideoWindows  # noqa: E402
from asva.models.asva_model import ASVAModel, ImageToVideoBase  # noqa: E402
from asva.models.audio_encoders import TinyAudioEncoder  # noqa: E402
from asva.models.first_stage import frames_to_unit  # noqa: E402
from asva.models.imagebind import ImageBindAudio, TrunkSpec  # noqa: E402
from asva.models.paper_model import build_dynamicrafter_base, sd_vae  # noqa: E402
from asva.models.placement import CPU_FP32  # noqa: E402
from asva.prepare_job import prepare_shard  # noqa: E402
from asva.training.adapters import train_adapter_stage  # noqa: E402

FPS, CLIP_FRAMES, RATE, VIDEO_SECONDS = 6, 12, 16000, 4.0
# Videos of the datasets, for the disk table: AVSync15's last about 10 s, VGGSound rows 10 s.
DATASET_SECONDS = {"AVSync15 (~10 s)": 10.0, "VGGSound (10 s)": 10.0}
PAPER_LATENT = (4, 32, 32)  # DynamiCrafter 256: 4 channels at 256 / 8 px
FP16_BYTES = 2
ASSUMED_GPU_TFLOPS = 100  # an assumption, not a measurement: about a third of an A100's bf16 peak


def video_set(videos: int, size: int) -> ClipSet:
    """`videos` in-memory videos of VIDEO_SECONDS (smooth random pictures, noise for sound)."""
    generator = torch.Generator().manual_seed(0)
    frames, audio = [], []
    for _ in range(videos):
        coarse = torch.rand(int(VIDEO_SECONDS * FPS), 3, 4, 4, generator=generator)
        picture = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
        frames.append((picture * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous())
        audio.append(torch.randn(int(VIDEO_SECONDS * RATE), generator=generator) * 0.1)
    windows = VideoWindows.from_videos(frames, audio, [0.0] * videos, CLIP_FRAMES, FPS, RATE)
    return ClipSet(
        video_ids=[f"v{i}" for i in range(videos)], labels=["drum"] * videos, frames=None, audio=None, fbank=None,
        event_times=[[] for _ in range(videos)], classes=["drum"], windows=windows, source=f"bench-{videos}-{size}",
        paths=[f"v{i}.mp4" for i in range(videos)],
    )


def embedded_model(clips: ClipSet) -> ASVAModel:
    torch.manual_seed(0)
    cfg = ModelConfig()
    base = ImageToVideoBase(cfg)
    base.first_stage.fit(frames_to_unit(clips.windows.frames[None, :256]))
    encoders = {name: TinyAudioEncoder(kind, 12, 64, 0.04, num_classes=1) for name, kind in (("a", "tiny_semantic"), ("b", "tiny_masked"))}
    return ASVAModel(base, encoders, [("a", 11), ("b", 11)], 1.5, FPS, cfg, 198)


def paper_model(_: ClipSet) -> ASVAModel:
    torch.manual_seed(0)
    base, _ = build_dynamicrafter_base("256", 3, "tiny")
    encoder = ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=4, out_dim=16)).eval()
    cfg = ModelConfig(context_dim=32, heads=4, frame_time_encoding=False, audio_time_encoding=False)
    return ASVAModel(base, {"a": encoder}, [("a", 11)], 1.5, FPS, cfg, 198)


def step_times(build, clips: ClipSet, batch: int, steps: int, cache_dir: Path | None) -> list[float]:
    """Seconds of each step but the first of one stage run (same seed: the same draws every run)."""
    stamps: list[float] = []
    stage = StageConfig(lr=1e-3, batch_size=batch, steps=steps, checkpoint_every=10_000, checkpoint_minutes=None)
    data = DataConfig(frame_size=clips.windows.frames.shape[1], num_workers=0)
    train_adapter_stage(build(clips), clips, stage, DiffusionConfig(), 0, "bench", data=data,
                        on_step=lambda step, loss: stamps.append(time.perf_counter()), cache_dir=cache_dir)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def compare(name: str, build, clips: ClipSet, batch: int, steps: int, folder: Path) -> dict:
    model = build(clips)
    started = time.perf_counter()
    counts = prepare_shard(clips, model.base.first_stage, CPU_FP32, folder, 0, 1, "float16", 0, name)
    prepare_s = time.perf_counter() - started
    arms: dict[str, list[float]] = {"on the fly": [], "cached": []}
    for _ in range(2):  # alternating, so a change of the shared machine's load touches both arms
        arms["on the fly"] += step_times(build, clips, batch, steps, None)
        arms["cached"] += step_times(build, clips, batch, steps, folder)
    medians = {arm: statistics.median(times) for arm, times in arms.items()}
    shard = next(folder.rglob("shard-00000-of-00001.npy"))
    return {
        "model": name,
        "batch": batch,
        "frames_px": clips.windows.frames.shape[1],
        "on_the_fly_s": medians["on the fly"],
        "cached_s": medians["cached"],
        "ratio": medians["cached"] / medians["on the fly"],
        "prepare_frames_per_s": counts["frames"] / prepare_s,
        "bytes_per_frame": (shard.stat().st_size - NPY_HEADER_BYTES) / counts["frames"],
    }


def full_vae_frame() -> tuple[float, float]:
    """(seconds, GFLOPs) of the full-width VAE encoding one 256-px frame on this CPU (random weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    vae = sd_vae("full").eval()
    frame = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        vae.encode(frame)  # warm-up
        counter = FlopCounterMode(display=False)
        started = time.perf_counter()
        with counter:
            vae.encode(frame).latent_dist.mode()
        seconds = time.perf_counter() - started
    return seconds, counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per run (2 runs per arm)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(compare("embedded", embedded_model, video_set(32, 32), 16, args.steps, Path(tmp) / "embedded"))
        rows.append(compare("paper (tiny width)", paper_model, video_set(8, 64), 2, args.steps, Path(tmp) / "paper"))
    print(f"{'model':<20}{'batch':>6}{'px':>5}{'on the fly s':>14}{'cached s':>10}{'ratio':>7}{'prepare fr/s':>14}")
    for row in rows:
        print(f"{row['model']:<20}{row['batch']:>6}{row['frames_px']:>5}{row['on_the_fly_s']:>14.3f}"
              f"{row['cached_s']:>10.3f}{row['ratio']:>7.2f}{row['prepare_frames_per_s']:>14.0f}")

    per_frame = PAPER_LATENT[0] * PAPER_LATENT[1] * PAPER_LATENT[2] * FP16_BYTES
    print(f"\nlatent cache at 256 px: {per_frame} bytes per frame (4 x 32 x 32 fp16); the paper arm's shard file "
          f"holds {rows[1]['bytes_per_frame']:.0f} bytes per frame")
    print(f"{'videos':<20}{'FPS':>5}{'frames/video':>14}{'GB per 1,000 videos':>21}{'GB per 152K':>13}")
    for dataset, seconds in DATASET_SECONDS.items():
        for fps in (6, 12):
            frames = round(seconds * fps)
            gigabytes = frames * per_frame * 1000 / 1e9
            print(f"{dataset:<20}{fps:>5}{frames:>14}{gigabytes:>21.2f}{gigabytes * 152:>13.1f}")

    seconds, gflops = full_vae_frame()
    frames = 60_000  # 1,000 videos of 10 s at 6 FPS
    print(f"\nfull-width VAE, one 256-px frame on this CPU ({args.threads} threads): {seconds:.2f} s, {gflops:.0f} GFLOPs")
    print(f"1,000 videos of 10 s at 6 FPS ({frames:,} frames): {frames * gflops / 1e3:,.0f} TFLOPs, {frames * seconds / 3600:.0f} h "
          f"on this CPU; {frames * gflops / ASSUMED_GPU_TFLOPS / 1e3 / 60:.1f} min at an assumed {ASSUMED_GPU_TFLOPS} TFLOP/s (GPU, bf16)")


if __name__ == "__main__":
    main()
