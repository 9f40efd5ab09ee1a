"""One bf16 training step of the paper-scale ASVA denoiser on random weights: peak memory and step time.

    python benchmarks/bench_paper_model_step.py                # full size, needs a CUDA GPU
    python benchmarks/bench_paper_model_step.py --tiny --device cpu   # the same code at tiny width

What runs: the DynamiCrafter 256 UNet (frozen, bf16) with the 16 audio cross-attentions and the six
768 -> 1024 projections (trainable, fp32 master weights, bf16 autocast), on random latents of
`--frames` frames at 256x256 (32x32 latents), 77 text + 16-per-frame image tokens and 6 x 229/96
audio tokens, batch `--batch`. The frozen encoders (VAE, OpenCLIP, ImageBind, BEATs) are not in the
step: their outputs are computed once per clip and cached, as the training job does. Prints one JSON
line; nothing is measured unless this is run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.nn import functional as F

from asva.models.adapters import AudioProjections, attach_dynamicrafter_audio_adapters
from asva.models.dynamicrafter import DynamiCrafterUNet, UNetSpec
from asva.models.tiny_unet import AudioContext, time_encoding
from asva.models.window_mask import frame_times, window_mask

TAPS = [("a", 3), ("a", 7), ("a", 11), ("b", 3), ("b", 7), ("b", 11)]
TOKENS = {"a": 229, "b": 96}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--fps", type=int, default=6)
    parser.add_argument("--radius", type=float, default=1.5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--tiny", action="store_true", help="tiny widths, to check the script without a GPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny --device cpu to check the script")

    spec = (
        UNetSpec(
            model_channels=32, channel_mult=(1, 2), attention_resolutions=(2, 1), num_head_channels=16, context_dim=64
        )
        if args.tiny
        else UNetSpec()
    )
    context_dim, latent = spec.context_dim, (8 if args.tiny else 32)
    encoder_dim = 32 if args.tiny else 768
    torch.manual_seed(0)
    with torch.device(device):
        unet = DynamiCrafterUNet(spec).to(torch.bfloat16).requires_grad_(False)
        cross = (
            attach_dynamicrafter_audio_adapters(unet, context_dim, spec.num_head_channels).float().requires_grad_(True)
        )
        projections = AudioProjections(TAPS, {"a": encoder_dim, "b": encoder_dim}, context_dim)
    trainable = list(cross.parameters()) + list(projections.parameters())
    optimizer = torch.optim.Adam(trainable, lr=1e-4)

    token_times = torch.cat([torch.linspace(0, 2, TOKENS[name]) for name, _ in TAPS]).to(device)
    times = frame_times(args.frames, args.fps).to(device)
    mask = window_mask(times, token_times, args.radius, args.fps)
    states = {tap: torch.randn(args.batch, TOKENS[tap[0]], encoder_dim, device=device) for tap in TAPS}
    x = torch.randn(args.batch, spec.in_channels, args.frames, latent, latent, device=device)
    target = torch.randn(args.batch, spec.out_channels, args.frames, latent, latent, device=device)
    context = torch.randn(args.batch, 77 + 16 * min(args.frames, 16), context_dim, device=device)
    timesteps = torch.randint(0, 1000, (args.batch,), device=device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            tokens = projections(states) + time_encoding(token_times, context_dim).to(device)
            audio = AudioContext(tokens=tokens, frame_mask=mask, frame_times=times)
            loss = F.mse_loss(unet(x.bfloat16(), timesteps, context.bfloat16(), audio=audio).float(), target)
        loss.backward()
        optimizer.step()
        return loss.item()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (kernel selection, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tiny": args.tiny,
        "batch": args.batch,
        "frames": args.frames,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "unet_parameters": sum(p.numel() for p in unet.parameters()) - sum(p.numel() for p in cross.parameters()),
        "step_seconds": round(seconds, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
