"""CRAFT with its released weights on frames with and without text: recall, false-positive rate and
the `max_text_area` that separates them (docs/curation.md, "text").

    python benchmarks/bench_craft_detection.py [--size 256] [--per-class 48] [--threads 1]

Frames come from tests/text_frames.py: --per-class frames with a caption (font sizes spread from
1/24 to 1/5 of the frame height, over 9 kinds of background) and --per-class frames without text
(the same 9 kinds: noise, smooth noise, gradients, shapes, stripes, checkerboards, building
facades, landscapes, letter-sized pen strokes), plus the embedded pool's 32-px frames with and
without its burnt-in caption (asva/data/synthetic.py). Every frame's text share (the part of the
frame CRAFT's word boxes cover) is printed, then recall and false-positive rate at a range of
thresholds, the schema's `max_text_area` marked. CRAFT costs about 0.85 s per 256-px frame on one
CPU thread (more on a busy machine): the defaults (48 + 48 frames) take 1.5-3 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from text_frames import BACKGROUNDS, text_frame, textless_frame  # noqa: E402

from asva.config.schema import CurationConfig  # noqa: E402
from asva.data import craft  # noqa: E402
from asva.data.synthetic import CLASSES, add_caption, render_frames  # noqa: E402

THRESHOLDS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05)
FONT_FRACTIONS = (1 / 24, 1 / 18, 1 / 13, 1 / 9, 1 / 6.5, 1 / 5)  # of the frame height


def font_sizes(size: int, count: int) -> list[int]:
    """count font sizes in pixels, cycling through FONT_FRACTIONS of the frame height."""
    return [max(8, round(size * FONT_FRACTIONS[i % len(FONT_FRACTIONS)])) for i in range(count)]


def embedded_frames(count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """count 32-px frames of the embedded pool without and with its caption defect."""
    plain, captioned = [], []
    names = sorted(CLASSES)
    for seed in range(count):
        rng = np.random.default_rng(seed)
        frames = render_frames(CLASSES[names[seed % len(names)]], [0.7, 1.5], 6, 2.0, 32, rng)
        plain.append(frames[seed % len(frames)])
        captioned.append(add_caption(frames, rng)[seed % len(frames)])
    return plain, captioned


def rates(positive: list[float], negative: list[float], threshold: float) -> tuple[float, float]:
    """(recall, false-positive rate) of `share > threshold`, as the text filter decides."""
    return float(np.mean(np.asarray(positive) > threshold)), float(np.mean(np.asarray(negative) > threshold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="side of the square frames in pixels")
    parser.add_argument("--per-class", type=int, default=48, help="frames with text, and as many without")
    parser.add_argument("--embedded", type=int, default=24, help="embedded-pool frames with and without caption")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--weights", default=None, help="craft_mlt_25k.pth (default: the packaged copy)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = craft.weights_path(args.weights)
    craft.craft_model(weights)
    threshold = CurationConfig().max_text_area

    positive, negative = [], []
    started = time.perf_counter()
    print(f"{'frame':>34}  text share")
    for seed, font_px in enumerate(font_sizes(args.size, args.per_class)):
        positive.append(craft.text_share(text_frame(args.size, font_px, seed), weights))
        print(f"{f'text {font_px:2d} px on {BACKGROUNDS[seed % len(BACKGROUNDS)]}':>34}  {positive[-1]:.4f}")
    for seed in range(args.per_class):
        negative.append(craft.text_share(textless_frame(args.size, 1000 + seed), weights))
        print(f"{f'no text, {BACKGROUNDS[(1000 + seed) % len(BACKGROUNDS)]}':>34}  {negative[-1]:.4f}")
    seconds = (time.perf_counter() - started) / (len(positive) + len(negative))
    plain, captioned = embedded_frames(args.embedded)
    embedded_negative = [craft.text_share(frame, weights) for frame in plain]
    embedded_positive = [craft.text_share(frame, weights) for frame in captioned]

    print(
        f"\n{len(positive)} + {len(negative)} frames of {args.size} px, {seconds:.2f} s per frame "
        f"on {args.threads} thread(s); weights {weights}"
    )
    print(
        f"text shares: with text min {min(positive):.4f} median {np.median(positive):.4f}; "
        f"without text max {max(negative):.4f} median {np.median(negative):.4f}"
    )
    print(
        f"embedded 32-px frames ({args.embedded} each): captioned min {min(embedded_positive):.4f}, "
        f"plain max {max(embedded_negative):.4f}"
    )
    print(f"\n{'max_text_area':>13}  {'recall':>6}  {'FPR':>5}  {'embedded recall':>15}  {'embedded FPR':>12}")
    for value in sorted({*THRESHOLDS, threshold}):
        recall, fpr = rates(positive, negative, value)
        recall_32, fpr_32 = rates(embedded_positive, embedded_negative, value)
        mark = "  <- schema default" if value == threshold else ""
        print(f"{value:>13g}  {recall:>6.3f}  {fpr:>5.3f}  {recall_32:>15.3f}  {fpr_32:>12.3f}{mark}")


if __name__ == "__main__":
    main()
