"""Frames with and without on-screen text, for measuring a text detector (tests/test_craft.py,
benchmarks/bench_craft_detection.py).

Text frames carry a caption of 2-4 common words (one or two lines) in Pillow's bundled scalable
font, at a size given in pixels, either outlined or on a subtitle box, over one of the backgrounds
the text-free frames use. Text-free frames are the hard cases a detector meets in footage: uniform
and smooth noise, gradients, random shapes, stripes and checkerboards, building facades with rows
of windows, landscape-like scenes (sky, hills, trees, a textured ground) and short pen strokes the
size of letters (grass, scribbles). All from a seed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

BACKGROUNDS = ("noise", "clouds", "gradient", "shapes", "stripes", "checkerboard", "facade", "landscape", "strokes")
WORDS = (
    "the",
    "water",
    "music",
    "live",
    "show",
    "breaking",
    "news",
    "today",
    "best",
    "guitar",
    "lesson",
    "subscribe",
    "now",
    "how",
    "to",
    "play",
    "drums",
    "part",
    "final",
    "round",
    "world",
    "record",
    "dog",
    "barking",
    "train",
    "coming",
    "fire",
    "alarm",
    "ocean",
    "waves",
    "baby",
    "laughing",
)


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, size=3))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size, 3) float in [0, 1]: random values on a cells x cells grid, upsampled smoothly."""
    grid = Image.fromarray(rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8))
    return np.asarray(grid.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def background(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A text-free RGB image of one of BACKGROUNDS."""
    if kind == "noise":
        return Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))
    if kind == "clouds":
        mix = 0.6 * _smooth_noise(rng, size, 4) + 0.4 * _smooth_noise(rng, size, 16)
        return Image.fromarray((255 * mix).clip(0, 255).astype(np.uint8))
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:size, 0:size] / size
        ramp = np.cos(angle) * xs + np.sin(angle) * ys
        ramp = (ramp - ramp.min()) / max(1e-6, np.ptp(ramp))
        start, end = np.array(_colour(rng)), np.array(_colour(rng))
        return Image.fromarray((start + ramp[..., None] * (end - start)).astype(np.uint8))
    image = Image.new("RGB", (size, size), _colour(rng))
    draw = ImageDraw.Draw(image)
    if kind == "shapes":
        for _ in range(int(rng.integers(8, 20))):
            box = sorted(rng.integers(0, size, 2)), sorted(rng.integers(0, size, 2))
            corners = [box[0][0], box[1][0], box[0][1] + 4, box[1][1] + 4]
            shape = rng.integers(0, 3)
            if shape == 0:
                draw.ellipse(corners, fill=_colour(rng))
            elif shape == 1:
                draw.rectangle(corners, fill=_colour(rng))
            else:
                draw.polygon([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)], fill=_colour(rng))
    elif kind == "stripes":
        period = int(rng.integers(6, 40))
        for left in range(-size, 2 * size, period):
            slant = int(rng.integers(0, size)) if rng.random() < 0.5 else 0
            draw.polygon(
                [(left, 0), (left + period // 2, 0), (left + period // 2 + slant, size), (left + slant, size)],
                fill=_colour(rng),
            )
    elif kind == "checkerboard":
        cell = int(rng.integers(8, 48))
        other = _colour(rng)
        for top in range(0, size, cell):
            for left in range((top // cell) % 2 * cell, size, 2 * cell):
                draw.rectangle([left, top, left + cell - 1, top + cell - 1], fill=other)
    elif kind == "facade":
        draw.rectangle([0, 0, size, size // 5], fill=(150, 190, 230))  # a strip of sky
        window, gap = int(rng.integers(6, 18)), int(rng.integers(4, 12))
        glass = _colour(rng, 0, 120)
        for top in range(size // 5 + gap, size - window, window + gap):
            for left in range(gap, size - window, window + gap):
                if rng.random() < 0.9:
                    draw.rectangle([left, top, left + window - 1, top + window * 3 // 2 - 1], fill=glass)
    elif kind == "landscape":
        horizon = int(size * rng.uniform(0.35, 0.6))
        for row in range(horizon):  # sky, lighter towards the horizon
            shade = 120 + int(110 * row / horizon)
            draw.line([(0, row), (size, row)], fill=(shade // 2, shade * 3 // 4, min(255, shade + 40)))
        draw.ellipse([size * 0.7, size * 0.08, size * 0.82, size * 0.2], fill=(255, 240, 190))
        hills = [(0, horizon)] + [(x, horizon - int(rng.integers(10, size // 4))) for x in range(0, size + 40, 40)]
        draw.polygon(hills + [(size, horizon), (size, size), (0, size)], fill=_colour(rng, 40, 140))
        ground = np.asarray(image, dtype=np.float32)
        ground[horizon:] *= 0.75 + 0.5 * _smooth_noise(rng, size, 32)[horizon:]
        image = Image.fromarray(ground.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 9))):  # trees
            x, base = int(rng.integers(0, size)), int(rng.integers(horizon, size))
            height = int(rng.integers(size // 10, size // 4))
            draw.polygon([(x, base - height), (x - height // 3, base), (x + height // 3, base)], fill=(20, 80, 30))
        image = image.filter(ImageFilter.GaussianBlur(0.8))
    elif kind == "strokes":  # letter-sized marks, the closest a text-free frame comes to writing
        for _ in range(int(rng.integers(60, 160))):
            x, y = (int(v) for v in rng.integers(0, size, 2))
            length, angle = rng.uniform(4, 20), rng.uniform(0, np.pi)
            end = (x + int(length * np.cos(angle)), y + int(length * np.sin(angle)))
            draw.line([(x, y), end], fill=_colour(rng), width=int(rng.integers(1, 4)))
    else:
        raise ValueError(f"unknown background {kind!r}")
    return image


def caption(image: Image.Image, font_px: int, rng: np.random.Generator) -> Image.Image:
    """The image with a 2-4 word caption (wrapped to two lines when too wide) at font_px pixels."""
    size = image.width
    font = ImageFont.load_default(size=font_px)
    words = [str(w) for w in rng.choice(WORDS, size=int(rng.integers(2, 5)))]
    lines = [" ".join(words)]
    if font.getlength(lines[0]) > 0.9 * size:
        half = len(words) // 2
        lines = [" ".join(words[:half]), " ".join(words[half:])]
    for index, line in enumerate(lines):  # a line still too wide loses words from its end
        while font.getlength(line) > 0.95 * size and " " in line:
            line = line.rsplit(" ", 1)[0]
        lines[index] = line
    width = int(max(font.getlength(line) for line in lines))
    height = int(font_px * 1.25 * len(lines))
    left = int(rng.integers(0, max(1, size - width)))
    top = int(rng.integers(0, max(1, size - height)))
    out = image.copy()
    draw = ImageDraw.Draw(out)
    on_box = rng.random() < 0.5
    if on_box:  # a subtitle on a dark box
        pad = max(2, font_px // 4)
        draw.rectangle([left - pad, top - pad, left + width + pad, top + height + pad], fill=(15, 15, 15))
        ink, outline = _colour(rng, 200, 256), None
    else:  # bright letters with a dark outline, as burnt-in titles are drawn
        ink, outline = _colour(rng, 170, 256), (0, 0, 0)
    for index, line in enumerate(lines):
        draw.text(
            (left, top + int(index * font_px * 1.25)),
            line,
            font=font,
            fill=ink,
            stroke_width=0 if on_box else max(1, font_px // 12),
            stroke_fill=outline,
        )
    return out


def text_frame(size: int, font_px: int, seed: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB: a caption at font_px over a background chosen by the seed."""
    rng = np.random.default_rng(seed)
    kind = BACKGROUNDS[seed % len(BACKGROUNDS)]
    return np.asarray(caption(background(kind, size, rng), font_px, rng))


def textless_frame(size: int, seed: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB without text: a background chosen by the seed."""
    rng = np.random.default_rng(seed)
    return np.asarray(background(BACKGROUNDS[seed % len(BACKGROUNDS)], size, rng))
