"""Windowed audio cross-attention against the dense masked version it replaced, side by side (CPU).

    python benchmarks/bench_window_attention.py [--repeats 2] [--min-seconds 2] [--forward-only]

One AudioCrossAttention per query width of the paper model at 256 px (DynamiCrafter 256 latents are
32 x 32: width 320 on 32 x 32 = 1024 spatial tokens, 640 on 16 x 16 = 256, 1280 on 8 x 8 = 64), heads
of 64 channels, context width 1024, batch 1, 12 frames at 6 FPS and 24 at 12 FPS, window radius
r in {0.5, 1.5, 3}. The audio is the paper's feature set a:3-7-11+b:3-7-11 for a 2-s clip: 975 tokens
with ImageBind's and BEATs' own token times, the 3 ImageBind CLS tokens seen by every frame.

  dense     every frame gets a copy of all 975 tokens, projects them to keys and values and masks out
            those outside its window (the former implementation, kept as the reference in
            tests/test_window_attention.py)
  windowed  the keys and values are projected once per clip and every frame attends to its own
            window's only (asva/models/adapters.py AudioCrossAttention)

Both run the same weights and inputs. Time: the best of at least --repeats runs each, the versions
taking turns for at least --min-seconds in all (a busy spell of the shared machine slows both alike),
of a training step (forward and backward; --forward-only: a forward without autograd, as in
sampling). Peak memory: the most bytes the step's tensors held at once, beyond what existed before
it (one step after the warm-up, run under torch.profiler with profile_memory, which sees every CPU
tensor allocation and free). `W` is the widest frame window in tokens, which the windowed version's
cost follows.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402
from test_window_attention import dense_masked_reference  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from asva.models import beats as beats_module  # noqa: E402
from asva.models.adapters import AudioCrossAttention  # noqa: E402
from asva.models.asva_model import global_token_flags  # noqa: E402
from asva.models.imagebind import ImageBindAudio, TrunkSpec  # noqa: E402
from asva.models.tiny_unet import AudioContext  # noqa: E402
from asva.models.window_mask import frame_times, window_mask  # noqa: E402

WIDTHS = {320: 32 * 32, 640: 16 * 16, 1280: 8 * 8}  # query width: spatial tokens at 256 px
FRAMES_AT_FPS = {12: 6, 24: 12}  # 2-s clips
RADII = (0.5, 1.5, 3.0)
CONTEXT_DIM = 1024
HEAD_CHANNELS = 64
TAPS_PER_ENCODER = 3  # a:3-7-11+b:3-7-11
FBANK_FRAMES = 198  # 2 s


def audio_layout() -> tuple[torch.Tensor, torch.Tensor]:
    """Token times [975] and global flags [975]: three ImageBind taps, then three BEATs taps."""
    imagebind = ImageBindAudio(TrunkSpec(dim=8, blocks=1, heads=2, out_dim=8))  # token times do not depend on width
    beats = beats_module.BEATs(
        beats_module.BEATsConfig(
            embed_dim=8,
            encoder_layers=1,
            encoder_embed_dim=8,
            encoder_ffn_embed_dim=8,
            encoder_attention_heads=2,
            conv_pos=4,
            conv_pos_groups=2,
        )
    )
    encoders = [imagebind] * TAPS_PER_ENCODER + [beats] * TAPS_PER_ENCODER
    times = [encoder.token_times(FBANK_FRAMES) for encoder in encoders]
    flags = [global_token_flags(encoder, len(t)) for encoder, t in zip(encoders, times)]
    return torch.cat(times), torch.cat(flags)


def peak_allocated_mib(step) -> float:
    """Run `step` once under the profiler; the highest running total of its tensor allocations."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    memory_events = sorted(
        (event.start_ns(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    held = peak = 0
    for _, nbytes in memory_events:
        held += nbytes
        peak = max(peak, held)
    return peak / 2**20


def measure(width: int, frames: int, repeats: int, min_seconds: float, train: bool) -> list[dict]:
    """One row per radius: {version: (best time in s, peak memory in MiB)} for both versions."""
    torch.manual_seed(0)
    fps = FRAMES_AT_FPS[frames]
    block = AudioCrossAttention(width, width // HEAD_CHANNELS, CONTEXT_DIM)
    block.attn.to_out.reset_parameters()  # starts at zero in the model; gradients need it non-zero
    token_times, global_tokens = audio_layout()
    tokens = torch.randn(frames, WIDTHS[width], width, requires_grad=train)
    audio_tokens = torch.randn(1, len(token_times), CONTEXT_DIM, requires_grad=train)
    versions = {"dense": partial(dense_masked_reference, block), "windowed": block}
    rows = []
    for radius in RADII:
        times = frame_times(frames, fps)
        mask = window_mask(times, token_times, radius, fps) | global_tokens
        audio = AudioContext(tokens=audio_tokens, frame_mask=mask, frame_times=times)

        def step(attention, audio=audio) -> None:
            if train:
                attention(tokens, audio, frames).sum().backward()
            else:
                with torch.no_grad():
                    attention(tokens, audio, frames)

        def forget_gradients() -> None:  # outside the measured step, so that every step allocates its own
            for tensor in (tokens, audio_tokens, *block.parameters()):
                tensor.grad = None

        peaks, seconds = {}, {version: [] for version in versions}
        for version, attention in versions.items():
            step(attention)  # warm-up: one-time allocations (kernel workspaces) stay out of the peak
            forget_gradients()
            peaks[version] = peak_allocated_mib(partial(step, attention))
        while min(map(len, seconds.values())) < repeats or sum(map(sum, seconds.values())) < min_seconds:
            for version, attention in versions.items():
                forget_gradients()
                start = time.perf_counter()
                step(attention)
                seconds[version].append(time.perf_counter() - start)
        rows.append(
            {
                "radius": radius,
                "window": int(mask.sum(dim=1).max()),
                "tokens": len(token_times),
                **{version: (min(seconds[version]), peaks[version]) for version in versions},
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--forward-only", action="store_true")
    args = parser.parse_args()
    train = not args.forward_only
    started = time.perf_counter()
    what = "forward (no autograd)" if args.forward_only else "training step (forward + backward)"
    print(
        f"{what}: best of >= {args.repeats} runs each, taking turns for >= {args.min_seconds:g} s, "
        f"after a warm-up; torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print(
        "| width | spatial tokens | frames | r | W / N | dense s | windowed s | speed-up | dense MiB | windowed MiB | memory ratio |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for frames in FRAMES_AT_FPS:
        for width, spatial in WIDTHS.items():
            for row in measure(width, frames, args.repeats, args.min_seconds, train):
                (dense_s, dense_mib), (windowed_s, windowed_mib) = row["dense"], row["windowed"]
                print(
                    f"| {width} | {spatial} | {frames} | {row['radius']:g} | {row['window']} / {row['tokens']} "
                    f"| {dense_s:.3f} | {windowed_s:.3f} | {dense_s / windowed_s:.1f}x "
                    f"| {dense_mib:.0f} | {windowed_mib:.0f} | {dense_mib / windowed_mib:.1f}x |",
                    flush=True,
                )
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
