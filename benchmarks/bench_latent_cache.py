"""Stage step time with the latent cache against the first stage on the fly, side by side; cache size.

    python benchmarks/bench_latent_cache.py [--steps 4] [--threads 1]
    python benchmarks/bench_latent_cache.py --device cuda --paper-width full   # the paper model itself

1. Measured. Two models with random weights (only time is measured), each trained on the same
   in-memory set of 4-s videos twice per arm, alternating (on the fly, cached, on the fly, cached),
   with the same draws, so both arms do the same work but the first stage's:

     embedded   the embedded default: tiny UNet, patch-autoencoder first stage, stand-in audio
                encoders, 32-px frames, batch 16 (the embedded recipe)
     paper      the paper model's classes (DynamiCrafter UNet, its KL VAE, OpenCLIP, Resampler;
                ImageBind audio and BEATs, layers 3-7-11 of each) at `--paper-width`: tiny on a CPU,
                with 64-px frames (32 x 32 latents, the paper's latent grid); full with 256-px frames

   Per model: the cache is prepared (asva/prepare_job.py `prepare_shard`, timed), then the median step
   time of each arm (data, encoding, forward, backward, Adam; the first step of each run left out)
   and their ratio (goal <= 0.6).
2. Counted. The FLOPs of one training step of one clip of the full-width paper model (built on the
   meta device: no memory, no weights): the first stage on the clip's frames against the rest.
3. Disk: the cache per 1,000 videos at 256 px (DynamiCrafter 256 latents: 4 x 32 x 32 per frame,
   fp16) for 6 and 12 FPS, computed, and checked against a shard file of 32 x 32 latents.
4. Time to prepare: the full-width VAE on one 256-px frame on this machine, and the FLOPs per 1,000
   videos.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from asva.config.schema import DataConfig, DiffusionConfig, ModelConfig, StageConfig  # noqa: E402
from asva.data.audio import MEL_BINS  # noqa: E402
from asva.data.dataset import ClipSet  # noqa: E402
from asva.data.latent_cache import NPY_HEADER_BYTES  # noqa: E402
from asva.data.windows import VideoWindows  # noqa: E402
from asva.models.asva_model import ASVAModel, ImageToVideoBase  # noqa: E402
from asva.models.audio_encoders import TinyAudioEncoder  # noqa: E402
from asva.models.beats import BEATs, BEATsConfig  # noqa: E402
from asva.models.first_stage import frames_to_unit  # noqa: E402
from asva.models.imagebind import ImageBindAudio, TrunkSpec  # noqa: E402
from asva.models.paper_model import build_dynamicrafter_base, sd_vae  # noqa: E402
from asva.models.placement import Placement  # noqa: E402
from asva.models.placement import resolve as resolve_placement  # noqa: E402
from asva.prepare_job import prepare_shard  # noqa: E402
from asva.training.adapters import train_adapter_stage  # noqa: E402

FPS, CLIP_FRAMES, RATE, VIDEO_SECONDS = 6, 12, 16000, 4.0
PAPER_TAPS = [("a", 3), ("a", 7), ("a", 11), ("b", 3), ("b", 7), ("b", 11)]
# Videos of the datasets, for the disk table: AVSync15's last about 10 s, VGGSound rows 10 s.
DATASET_SECONDS = {"AVSync15 (~10 s)": 10.0, "VGGSound (10 s)": 10.0}
PAPER_LATENT = (4, 32, 32)  # DynamiCrafter 256: 4 channels at 256 / 8 px
FP16_BYTES = 2


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
        video_ids=[f"v{i}" for i in range(videos)],
        labels=["drum"] * videos,
        frames=None,
        audio=None,
        fbank=None,
        event_times=[[] for _ in range(videos)],
        classes=["drum"],
        windows=windows,
        source=f"bench-{videos}-{size}",
        paths=[f"v{i}.mp4" for i in range(videos)],
    )


def embedded_model(clips: ClipSet) -> ASVAModel:
    torch.manual_seed(0)
    cfg = ModelConfig()
    base = ImageToVideoBase(cfg)
    base.first_stage.fit(frames_to_unit(clips.windows.frames[None, :256]))
    kinds = (("a", "tiny_semantic"), ("b", "tiny_masked"))
    encoders = {name: TinyAudioEncoder(kind, 12, 64, 0.04, num_classes=1) for name, kind in kinds}
    return ASVAModel(base, encoders, [("a", 11), ("b", 11)], 1.5, FPS, cfg, 198)


def paper_model(width: str) -> ASVAModel:
    """The paper model's classes at `width` with random weights, on the current default device."""
    torch.manual_seed(0)
    base, _ = build_dynamicrafter_base("256", 3, width)
    if width == "full":
        encoders = {"a": ImageBindAudio(), "b": BEATs(BEATsConfig())}
        cfg = ModelConfig(context_dim=1024, heads=16)
    else:
        tiny_beats = BEATsConfig(
            encoder_embed_dim=32,
            encoder_ffn_embed_dim=64,
            encoder_attention_heads=4,
            embed_dim=24,
            conv_pos=16,
            conv_pos_groups=4,
            num_buckets=32,
            max_distance=64,
        )
        encoders = {"a": ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=4, out_dim=16)), "b": BEATs(tiny_beats)}
        cfg = ModelConfig(context_dim=32, heads=4)
    cfg.frame_time_encoding = cfg.audio_time_encoding = False  # the papers' cross-attention
    return ASVAModel(base, {n: e.eval() for n, e in encoders.items()}, PAPER_TAPS, 1.5, FPS, cfg, 198)


def step_times(model: ASVAModel, clips: ClipSet, batch: int, steps: int, cache_dir: Path | None) -> list[float]:
    """Seconds of each step but the first of one stage run (seed 0: the same draws every run)."""
    stamps: list[float] = []

    def stamp(step: int, loss: float) -> None:
        if model.placement.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    model.reset_adapters(0)
    stage = StageConfig(lr=1e-3, batch_size=batch, steps=steps, checkpoint_every=10_000, checkpoint_minutes=None)
    data = DataConfig(frame_size=clips.windows.frames.shape[1], num_workers=0)
    train_adapter_stage(
        model, clips, stage, DiffusionConfig(), 0, "bench", data=data, on_step=stamp, cache_dir=cache_dir
    )
    return [later - earlier for earlier, later in itertools.pairwise(stamps)]


def compare(name: str, model: ASVAModel, clips: ClipSet, batch: int, steps: int, folder: Path) -> dict:
    started = time.perf_counter()
    counts = prepare_shard(clips, model.base.first_stage, model.placement, folder, 0, 1, "float16", 0, name)
    prepare_s = time.perf_counter() - started
    arms: dict[str, list[float]] = {"on the fly": [], "cached": []}
    for _ in range(2):  # alternating, so a change of the shared machine's load touches both arms
        arms["on the fly"] += step_times(model, clips, batch, steps, None)
        arms["cached"] += step_times(model, clips, batch, steps, folder)
    medians = {arm: statistics.median(times) for arm, times in arms.items()}
    shard = next(folder.rglob("shard-00000-of-00001.npy"))
    return {
        "model": name,
        "batch": batch,
        "px": clips.windows.frames.shape[1],
        "on_the_fly_s": medians["on the fly"],
        "cached_s": medians["cached"],
        "ratio": medians["cached"] / medians["on the fly"],
        "prepare_frames_per_s": counts["frames"] / prepare_s,
        "bytes_per_frame": (shard.stat().st_size - NPY_HEADER_BYTES) / counts["frames"],
    }


def count_gflops(run) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_total_flops() / 1e9


def meta_paper_model() -> ASVAModel:
    """The full-width paper model on the meta device: shapes without memory, for counting FLOPs."""
    with torch.device("meta"):
        model = paper_model("full")
    model.placement = Placement(torch.device("meta"), None)
    return model


def full_width_step_gflops(model: ASVAModel, frames: int) -> tuple[float, float]:
    """(first stage on the clip's frames, the rest of the step) in GFLOPs for one 256-px clip of
    `frames` frames of the full-width paper model."""
    clip = torch.zeros(1, frames, 256, 256, 3, dtype=torch.uint8, device="meta")
    keep = torch.zeros(1, dtype=torch.bool)
    with torch.no_grad():
        first_stage = count_gflops(lambda: model.base.encode_video(clip))

    def rest() -> None:
        with torch.no_grad():
            fbank, waveform = torch.zeros(1, 198, MEL_BINS, device="meta"), torch.zeros(1, 32000, device="meta")
            features = model.encode_audio(fbank, waveform, RATE)
        cond = model.conditions(clip, features, ["a dog barks"], keep, keep, keep)
        noisy = torch.zeros(1, 4, frames, 32, 32, device="meta")
        model(noisy, torch.zeros(1, dtype=torch.long, device="meta"), cond).float().square().mean().backward()

    return first_stage, count_gflops(rest)


def full_vae_frame(device: torch.device) -> float:
    """Seconds of the full-width VAE encoding one 256-px frame (random weights) on `device`."""
    torch.manual_seed(0)
    vae = sd_vae("full").eval().to(device)
    frame = torch.rand(1, 3, 256, 256, device=device) * 2 - 1
    with torch.no_grad():
        vae.encode(frame)  # warm-up
        started = time.perf_counter()
        vae.encode(frame).latent_dist.mode()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="steps per run (2 runs per arm, first step not timed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paper-width", default="tiny", choices=("tiny", "full"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    placement = resolve_placement(args.device, "auto")
    paper_px = 256 if args.paper_width == "full" else 64

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, clips, batch in (
            ("embedded", embedded_model, video_set(32, 32), 16),
            (f"paper ({args.paper_width} width)", lambda _: paper_model(args.paper_width), video_set(8, paper_px), 2),
        ):
            model = build(clips).place(placement)
            rows.append(compare(name, model, clips, batch, args.steps, Path(tmp) / name.split()[0]))
            del model
    precision = "bf16-mixed" if placement.mixed else "fp32"
    print(f"\n1. measured on {placement.device} ({precision}, {args.threads} threads)")
    print(f"{'model':<22}{'batch':>6}{'px':>5}{'on the fly s':>14}{'cached s':>10}{'ratio':>7}{'prepare frames/s':>18}")
    for row in rows:
        print(
            f"{row['model']:<22}{row['batch']:>6}{row['px']:>5}{row['on_the_fly_s']:>14.3f}"
            f"{row['cached_s']:>10.3f}{row['ratio']:>7.2f}{row['prepare_frames_per_s']:>18.0f}"
        )

    print("\n2. counted: one 256-px clip, full-width paper model (GFLOPs)")
    print(f"{'FPS':>4}{'frames':>8}{'first stage':>13}{'rest of step':>14}{'cached / on the fly':>21}")
    meta = meta_paper_model()
    for fps in (6, 12):
        first_stage, rest = full_width_step_gflops(meta, 2 * fps)
        print(f"{fps:>4}{2 * fps:>8}{first_stage:>13.0f}{rest:>14.0f}{rest / (rest + first_stage):>21.2f}")
        frame_gflops = first_stage / (2 * fps)

    per_frame = PAPER_LATENT[0] * PAPER_LATENT[1] * PAPER_LATENT[2] * FP16_BYTES
    print(
        f"\n3. disk: {per_frame} bytes per frame at 256 px (4 x 32 x 32 fp16); a shard file of the paper arm's "
        f"32 x 32 latents holds {rows[1]['bytes_per_frame']:.0f}"
    )
    print(f"{'videos':<20}{'FPS':>5}{'frames/video':>14}{'GB per 1,000 videos':>21}{'GB per 152K':>13}")
    for dataset, seconds in DATASET_SECONDS.items():
        for fps in (6, 12):
            frames = round(seconds * fps)
            gigabytes = frames * per_frame * 1000 / 1e9
            print(f"{dataset:<20}{fps:>5}{frames:>14}{gigabytes:>21.2f}{gigabytes * 152:>13.1f}")

    seconds = full_vae_frame(placement.device)
    print(
        f"\n4. full-width VAE, one 256-px frame on {placement.device}: {seconds:.3f} s, {frame_gflops:.0f} GFLOPs "
        f"(encoder); 1,000 videos of 10 s at 6 FPS (60,000 frames): {60_000 * frame_gflops / 1e3:,.0f} TFLOPs, "
        f"{60_000 * seconds / 3600:.1f} h at this rate (12 FPS: twice)"
    )


if __name__ == "__main__":
    main()
