"""The paper model on one GPU: bf16 training-step time, peak memory, TFLOP/s and MFU, and one sample.

    python benchmarks/gpu_check.py                      # full size, one CUDA GPU, < 6 minutes
    python benchmarks/gpu_check.py --tiny --device cpu  # the same code at tiny width (the tests run this)

Builds the paper model (DynamiCrafter 256 with OpenCLIP, the SD VAE, ImageBind audio and BEATs, the
16 audio cross-attentions and the a:3-7-11+b:3-7-11 projections) with random weights (nothing is
downloaded) through the job's own builder parts, places it as a job does (`train.device=cuda`,
`train.precision=bf16-mixed`: frozen parts bf16, adapters fp32, TF32 on), and times the job's own
training step (`asva.training.adapters.adapter_loss`: clips cut, VAE and audio encoders run per step,
denoiser forward and backward, Adam) for the 6-FPS model (12 frames) at per-GPU batch 2 and 4 and
the 12-FPS model (24 frames) at batch 1 and 2, each with and without gradient checkpointing; then
one DDIM-20 sample with 4-way guidance (`asva.evaluation.sampling`). FLOPs are counted with
torch.utils.flop_counter.FlopCounterMode on one step; MFU divides the achieved FLOP/s by the GPU's
dense bf16 peak, looked up by its name. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from asva.config.schema import DataConfig, DiffusionConfig, ModelConfig
from asva.data.audio import fbank
from asva.data.dataset import ClipSet
from asva.evaluation.sampling import denoise, latents_to_frames
from asva.models.asva_model import ASVAModel
from asva.models.beats import BEATs, BEATsConfig
from asva.models.imagebind import ImageBindAudio, TrunkSpec
from asva.models.paper_model import build_dynamicrafter_base
from asva.models.placement import resolve
from asva.training.adapters import StageClips, adapter_loss

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}
TAPS = [("a", 3), ("a", 7), ("a", 11), ("b", 3), ("b", 7), ("b", 11)]
SAMPLE_RATE = 16000
# (label, fps, per-GPU batch) of the paper's two models at 256 px, 2-s clips.
SETTINGS = [("6fps", 6, 2), ("6fps", 6, 4), ("12fps", 12, 1), ("12fps", 12, 2)]
TINY_SETTINGS = [("6fps", 6, 1)]


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def build(fps: int, tiny: bool, placement) -> ASVAModel:
    width = "tiny" if tiny else "full"
    base, _ = build_dynamicrafter_base("256", width=width)
    if tiny:  # the same classes at test width: 12 blocks of 32 channels
        imagebind = ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=2, out_dim=16))
        beats = BEATs(
            BEATsConfig(encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2, conv_pos=16)
        )
    else:
        imagebind, beats = ImageBindAudio(), BEATs(BEATsConfig())
    encoders = {"a": imagebind, "b": beats}
    model_cfg = ModelConfig(name="dynamicrafter", context_dim=base.unet.spec.context_dim)
    model = ASVAModel(base, encoders, TAPS, window_radius=1.5, fps=fps, cfg=model_cfg, fbank_frames=198)
    return model.place(placement)


def random_clips(count: int, fps: int, size: int) -> ClipSet:
    frames = torch.randint(0, 256, (count, 2 * fps, size, size, 3), dtype=torch.uint8)
    audio = torch.randn(count, 2 * SAMPLE_RATE) * 0.1
    return ClipSet(
        [f"clip{i}" for i in range(count)],
        ["drum"] * count,
        frames,
        audio,
        fbank(audio, SAMPLE_RATE),
        [[] for _ in range(count)],
        ["drum"],
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model: ASVAModel, clips: ClipSet, batch: int, diffusion: DiffusionConfig, steps: int) -> dict:
    device = model.placement.device
    source = StageClips(model, clips, DataConfig(sample_rate=SAMPLE_RATE))
    loss_of = adapter_loss(model, source, diffusion)
    optimizer = torch.optim.Adam(model.adapter_parameters(), lr=1e-4)
    first_batch = next(iter(source.batches(batch, seed=0, data_parallel=False)(0, 1)))

    def step(index: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_of(first_batch, torch.Generator().manual_seed(index)).backward()
        optimizer.step()

    step(0)  # warm-up: kernel choice, allocator
    with FlopCounterMode(display=False) as counter:
        step(1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    started = time.perf_counter()
    for index in range(steps):
        step(2 + index)
    synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    flops = counter.get_total_flops()
    peak = peak_tflops(device)
    achieved = flops / seconds / 1e12
    return {
        "step_seconds": round(seconds, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "tflop_per_step": round(flops / 1e12, 3),
        "achieved_tflops": round(achieved, 2),
        "mfu": round(achieved / peak, 4) if peak else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny widths, to check the script without a GPU")
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps per setting, after one warm-up and one counted step"
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny --device cpu to check the script")
    placement = resolve(args.device, "bf16-mixed")
    size = 32 if args.tiny else 256
    sampling_steps = 2 if args.tiny else 20
    diffusion = DiffusionConfig(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="epsilon"
    )
    result = {
        "device": torch.cuda.get_device_name(placement.device) if placement.device.type == "cuda" else "cpu",
        "tiny": args.tiny,
        "precision": "bf16-mixed",
        "peak_bf16_tflops": peak_tflops(placement.device),
        "train_steps": [],
    }
    started = time.perf_counter()
    models = {}
    for label, fps, batch in TINY_SETTINGS if args.tiny else SETTINGS:
        if label not in models:
            models.clear()  # one full-size model on the GPU at a time
            torch.manual_seed(0)
            with torch.device(placement.device):
                models[label] = build(fps, args.tiny, placement)
        model = models[label]
        clips = random_clips(batch, fps, size)
        for checkpointing in (False, True):
            model.base.unet.gradient_checkpointing = checkpointing
            try:
                timing = time_steps(model, clips, batch, diffusion, args.steps)
            except torch.OutOfMemoryError:
                timing = {"error": "out of memory"}
                torch.cuda.empty_cache()
            result["train_steps"].append(
                {"model": label, "frames": 2 * fps, "batch": batch, "gradient_checkpointing": checkpointing, **timing}
            )
            print(json.dumps(result["train_steps"][-1]), flush=True)  # partial results survive a time-out
    model = models[next(iter(models))]
    model.base.unet.gradient_checkpointing = False
    clips = random_clips(1, model.fps, size)
    features = model.encode_audio(clips.fbank, clips.audio, SAMPLE_RATE)
    synchronize(placement.device)
    sampling_started = time.perf_counter()
    latents = denoise(
        model,
        clips.frames,
        features,
        ["drum"],
        replace(diffusion, sampling_steps=sampling_steps),
        torch.Generator().manual_seed(0),
    )
    latents_to_frames(model, latents)
    synchronize(placement.device)
    result["sample"] = {
        "model": next(iter(models)),
        "batch": 1,
        "ddim_steps": sampling_steps,
        "guidance": "4-way (none, image, image+text, all)",
        "seconds": round(time.perf_counter() - sampling_started, 3),
    }
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
