"""The embedded benchmark: a generated audio-visual dataset whose event times are known exactly.

Every class is a sound with its own timbre coupled to a motion of its own object. Events happen at
random times, so only the audio says when. Some classes move *before* their sound (a hammer is
raised, a ball falls), so a frame needs audio context a little beyond its own 1/FPS slot. Every
event also lights its object up on impact, the visual onset the event-sync metric detects.

The benchmark is written in the folder layout of the real AVSync15 release (videos/<class>/<id>.mp4,
train.txt, test.txt, classes.txt) plus a manifest.csv that keeps each clip's event times. A larger,
noisier pretraining pool (misaligned audio, distractor sounds, static clips, extra classes) is
written beside it in pool/, in the same layout. Held-out clips of the pool-only classes, which
neither the benchmark nor the pool holds, are written in openclass/ (a test.txt in the same layout):
the open-class evaluation (asva/data/openclass.py).
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asva.config.schema import DataConfig, SyntheticConfig
from asva.data.media import write_video
from asva.files import lock
from asva.progress import progress as progress_counter

# Seconds before its sound that an anticipating object starts to move.
ANTICIPATION_S = 0.4
# Events are at least this far apart, and the first no earlier than the anticipation window.
MIN_EVENT_GAP_S = 0.6
FLASH_HOLD_S = 0.17
FLASH_DECAY_S = 0.1
# Part of the generated benchmark's fingerprint: bump it when the same settings would render other files.
SYNTHETIC_CACHE_VERSION = 4


@dataclass(frozen=True)
class SoundClass:
    """How one class sounds and moves."""

    name: str
    color: tuple[int, int, int]
    # Tone partials (Hz) and how fast the sound decays (s); noise_mix is the share of noise.
    partials: tuple[float, ...]
    decay_s: float
    noise_mix: float
    # The motion: "raise" (lifted before the hit), "fall" (drops onto the floor), "none" (no wind-up).
    anticipation: str


CLASSES: dict[str, SoundClass] = {
    c.name: c
    for c in (
        SoundClass("hammer", (230, 120, 40), (820.0, 1650.0), 0.08, 0.5, "raise"),
        SoundClass("ball_bounce", (60, 200, 90), (110.0, 220.0), 0.12, 0.2, "fall"),
        SoundClass("drum", (200, 60, 60), (190.0, 280.0), 0.25, 0.4, "none"),
        SoundClass("lamp_flash", (240, 230, 80), (3200.0,), 0.03, 0.1, "none"),
        SoundClass("clapper", (120, 90, 220), (1400.0,), 0.04, 0.8, "raise"),
        SoundClass("bell", (80, 180, 230), (1200.0, 2400.0, 3600.0), 0.5, 0.0, "none"),
    )
}


@dataclass
class ClipSpec:
    video_id: str
    label: str
    split: str  # train | test | pool | openclass
    event_times: list[float]
    # clean | misaligned (audio events elsewhere) | distractor (an unseen extra sound) | static, or a
    # visual defect the curation filters target: scene_cut | violent_motion | text
    corruption: str = "clean"
    audio_event_times: list[float] | None = None  # where the sounds are, when not at event_times


def sample_event_times(rng: np.random.Generator, seconds: float) -> list[float]:
    """1 to 3 events per 2 s, the first late enough for its wind-up to start after frame 0."""
    count = int(rng.integers(1, round(1.5 * seconds) + 1))
    for _ in range(100):
        times = np.sort(rng.uniform(ANTICIPATION_S + 0.05, seconds - 0.15, size=count))
        if count == 1 or np.diff(times).min() >= MIN_EVENT_GAP_S:
            return [round(float(t), 4) for t in times]
    return [round(float(rng.uniform(ANTICIPATION_S + 0.05, seconds - 0.15)), 4)]


def motion_state(times: np.ndarray, events: list[float], anticipation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per time: (lift in [0, 1] of the winding-up object, flash in [0, 1] after an impact)."""
    lift = np.zeros_like(times)
    flash = np.zeros_like(times)
    for event in events:
        dt = times - event
        if anticipation != "none":
            before = (dt >= -ANTICIPATION_S) & (dt < 0)
            progress = (dt[before] + ANTICIPATION_S) / ANTICIPATION_S
            # raise: lifted steadily, then struck down; fall: dropped from high, accelerating.
            lift[before] = np.maximum(lift[before], progress if anticipation == "raise" else 1 - progress**2)
        held = (dt >= 0) & (dt < FLASH_HOLD_S)
        decaying = dt >= FLASH_HOLD_S
        flash[held] = 1.0
        flash[decaying] = np.maximum(flash[decaying], np.exp(-(dt[decaying] - FLASH_HOLD_S) / FLASH_DECAY_S))
    return lift, flash


def render_frames(
    sound_class: SoundClass,
    events: list[float],
    fps: int,
    seconds: float,
    size: int,
    rng: np.random.Generator,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Frames [T, size, size, 3] uint8: a background, a floor, the object with its lift and flash.

    `background` (RGB) replaces the usual dark random one (a scene cut's second shot uses it).
    """
    num_frames = round(seconds * fps)
    times = np.arange(num_frames) / fps
    lift, flash = motion_state(times, events, sound_class.anticipation)
    drawn = rng.integers(20, 70, size=3)
    background = drawn if background is None else np.asarray(background)
    color = np.clip(np.asarray(sound_class.color) + rng.integers(-25, 26, size=3), 0, 255)
    radius = size * rng.uniform(0.14, 0.2)
    center_x = size * rng.uniform(0.3, 0.7)
    floor_y = size * 0.85
    rise = size * 0.45
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for index in range(num_frames):
        image = np.broadcast_to(background, (size, size, 3)).astype(np.float32).copy()
        image[yy >= floor_y] = background * 0.5 + 30
        center_y = floor_y - radius - lift[index] * rise
        inside = (xx - center_x) ** 2 + (yy - center_y) ** 2 <= radius**2
        lit = color + flash[index] * (255 - color) * 0.9
        image[inside] = lit
        # The impact lights up a wide halo: a visual onset large enough to learn from few clips.
        halo = ((xx - center_x) ** 2 + (yy - center_y) ** 2 <= (radius * 2.2) ** 2) & ~inside
        image[halo] = image[halo] * (1 - 0.7 * flash[index]) + 255 * 0.7 * flash[index]
        frames[index] = np.clip(image, 0, 255).astype(np.uint8)
    return frames


def synthesize_audio(
    sound_class: SoundClass, events: list[float], seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Mono float32 audio: one struck sound per event over a quiet noise floor."""
    samples = int(round(seconds * sample_rate))
    audio = rng.normal(0, 0.005, size=samples)
    t = np.arange(int(sample_rate * min(1.0, 6 * sound_class.decay_s + 0.05))) / sample_rate
    envelope = np.exp(-t / sound_class.decay_s) * np.minimum(1.0, t / 0.002)
    tone = sum(
        np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi)) / (i + 1) for i, f in enumerate(sound_class.partials)
    )
    for event in events:
        noise = rng.normal(0, 1, size=len(t))
        strike = envelope * ((1 - sound_class.noise_mix) * tone + sound_class.noise_mix * noise)
        strike *= rng.uniform(0.5, 0.8) / max(1e-6, np.abs(strike).max())
        start = int(round(event * sample_rate))
        end = min(samples, start + len(strike))
        audio[start:end] += strike[: end - start]
    return audio.astype(np.float32)


def _pool_spec(rng: np.random.Generator, cfg: SyntheticConfig, spec: ClipSpec, seconds: float) -> ClipSpec:
    """Corrupt a clean pool clip the way uncurated web video is corrupt."""
    draw = rng.uniform()
    kinds = {
        "misaligned": cfg.pool_misaligned_fraction,
        "distractor": cfg.pool_distractor_fraction,
        "static": cfg.pool_static_fraction,
        "scene_cut": cfg.pool_scene_cut_fraction,
        "violent_motion": cfg.pool_violent_motion_fraction,
        "text": cfg.pool_text_fraction,
    }
    for kind, bound in zip(kinds, np.cumsum(list(kinds.values()))):
        if draw < bound:
            spec.corruption = kind
            break
    if spec.corruption == "misaligned":
        spec.audio_event_times = sample_event_times(rng, seconds)
    return spec


# Backgrounds of a cut's second shot: bright and saturated, unlike every clip's dark first shot,
# so the cut is a change of scene and not an impact flash (see CurationConfig.scene_threshold).
SECOND_SHOT_BACKGROUNDS = ((235, 70, 60), (60, 220, 80), (70, 90, 240), (230, 220, 60), (220, 70, 220), (60, 210, 220))


def second_shot(sound_class: SoundClass, fps: int, seconds: float, size: int, rng: np.random.Generator) -> np.ndarray:
    background = SECOND_SHOT_BACKGROUNDS[int(rng.integers(len(SECOND_SHOT_BACKGROUNDS)))]
    return render_frames(sound_class, sample_event_times(rng, seconds), fps, seconds, size, rng, background=background)


def add_scene_cut(frames: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut to another shot part-way through: the rest of the clip shows `other`."""
    cut = int(rng.integers(len(frames) // 3, 2 * len(frames) // 3 + 1))
    out = frames.copy()
    out[cut:] = other[cut:]
    return out


def add_camera_shake(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A violently shaking camera: each frame jumps by up to a fifth of the frame."""
    reach = max(2, frames.shape[1] // 5)
    shifts = rng.integers(-reach, reach + 1, size=(len(frames), 2))
    return np.stack([np.roll(frame, tuple(shift), axis=(0, 1)) for frame, shift in zip(frames, shifts)])


CAPTION_LETTERS = "ABCDEFGHKLMNPRSTUVXYZ"


def add_caption(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Burn a caption (two large letters, white on a dark box) into every frame, as subtitles are."""
    import cv2  # only the pool's text defect draws with it

    size = frames.shape[1]
    text = "".join(rng.choice(list(CAPTION_LETTERS), size=2))
    scale = size / 46
    thickness = max(1, round(size / 16))
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    left = int(rng.integers(0, max(1, size - width)))
    top = int(rng.integers(height + 2, max(height + 3, size // 2)))
    out = np.ascontiguousarray(frames.copy())
    for frame in out:
        cv2.rectangle(
            frame, (max(0, left - 1), top - height - 2), (min(size - 1, left + width + 1), top + 2), (0, 0, 0), -1
        )
        cv2.putText(frame, text, (left, top), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def plan_clips(cfg: SyntheticConfig, seconds: float) -> list[ClipSpec]:
    """Every clip's label, split and event times: the whole dataset, from the seed alone."""
    rng = np.random.default_rng(cfg.seed)
    specs = []
    for label in cfg.benchmark_classes:
        for split, count in (("train", cfg.train_per_class), ("test", cfg.test_per_class)):
            for index in range(count):
                specs.append(ClipSpec(f"{label}_{split}_{index:03d}", label, split, sample_event_times(rng, seconds)))
    for label in list(cfg.benchmark_classes) + list(cfg.pool_only_classes):
        for index in range(cfg.pool_per_class):
            spec = ClipSpec(f"{label}_pool_{index:03d}", label, "pool", sample_event_times(rng, seconds))
            specs.append(_pool_spec(rng, cfg, spec, seconds))
    # Open-class clips draw from a generator of their own, so the clips above stay as they were.
    open_rng = np.random.default_rng([cfg.seed, zlib.crc32(b"openclass")])
    for label in cfg.pool_only_classes:
        for index in range(cfg.openclass_per_class):
            specs.append(
                ClipSpec(f"{label}_openclass_{index:03d}", label, "openclass", sample_event_times(open_rng, seconds))
            )
    return specs


def _render_clip(spec: ClipSpec, data: DataConfig, seed: int, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, zlib.crc32(spec.video_id.encode())])
    sound_class = CLASSES[spec.label]
    visual_events = [] if spec.corruption == "static" else spec.event_times
    seconds = data.synthetic.video_seconds
    frames = render_frames(sound_class, visual_events, data.fps, seconds, data.frame_size, rng)
    if spec.corruption == "scene_cut":
        other = CLASSES[labels[int(rng.integers(len(labels)))]]
        shot = second_shot(other, data.fps, seconds, data.frame_size, rng)
        frames = add_scene_cut(frames, shot, rng)
    elif spec.corruption == "violent_motion":
        frames = add_camera_shake(frames, rng)
    elif spec.corruption == "text":
        frames = add_caption(frames, rng)
    audio_events = spec.audio_event_times or spec.event_times
    audio = synthesize_audio(sound_class, audio_events, seconds, data.sample_rate, rng)
    if spec.corruption == "distractor":
        other = CLASSES[labels[int(rng.integers(len(labels)))]]
        audio = audio + synthesize_audio(other, sample_event_times(rng, seconds), seconds, data.sample_rate, rng)
    return frames, audio


def dataset_fingerprint(data: DataConfig) -> str:
    """Everything the generated files depend on, so a changed setting regenerates them."""
    return json.dumps(
        {
            "synthetic": asdict(data.synthetic),
            "fps": data.fps,
            "size": data.frame_size,
            "rate": data.sample_rate,
            "version": SYNTHETIC_CACHE_VERSION,
        },
        sort_keys=True,
    )


# The split file a folder of its own names its clips in: the pool trains, the open classes test.
SPLIT_FILE = {"pool": "train", "openclass": "test"}


def _write_split_files(root: Path, specs: list[ClipSpec], splits: tuple[str, ...]) -> None:
    labels = sorted({s.label for s in specs})
    (root / "classes.txt").write_text("\n".join(labels) + "\n")
    for split in splits:
        lines = [f"{s.label}/{s.video_id}.mp4" for s in specs if s.split == split]
        (root / f"{SPLIT_FILE.get(split, split)}.txt").write_text("\n".join(lines) + "\n")
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "label", "split", "path", "event_times", "audio_event_times", "corruption"])
        for s in specs:
            writer.writerow(
                [
                    s.video_id,
                    s.label,
                    SPLIT_FILE.get(s.split, s.split),
                    f"videos/{s.label}/{s.video_id}.mp4",
                    " ".join(map(str, s.event_times)),
                    " ".join(map(str, s.audio_event_times or s.event_times)),
                    s.corruption,
                ]
            )


def generate(data: DataConfig, root: Path) -> Path:
    """Write the benchmark (root) and its pretraining pool (root/pool); skip what is already there.

    Resumable: files are written atomically and the `done` marker comes last, so a killed
    generation continues where it stopped.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with lock(root):  # parallel jobs: one generates, the others wait
        return _generate_unlocked(data, root)


def _generate_unlocked(data: DataConfig, root: Path) -> Path:
    marker = root / "done"
    fingerprint = dataset_fingerprint(data)
    if marker.exists() and marker.read_text() == fingerprint:
        return root
    cfg = data.synthetic
    specs = plan_clips(cfg, cfg.video_seconds)
    labels = list(cfg.benchmark_classes) + list(cfg.pool_only_classes)
    for spec in progress_counter(specs, desc=f"generating synthetic benchmark in {root}", unit="clip"):
        folder = root / spec.split if spec.split in SPLIT_FILE else root
        path = folder / "videos" / spec.label / f"{spec.video_id}.mp4"
        if path.exists():
            continue
        frames, audio = _render_clip(spec, data, cfg.seed, labels)
        write_video(path, frames, data.fps, audio, data.sample_rate)
    _write_split_files(root, [s for s in specs if s.split in ("train", "test")], ("train", "test"))
    _write_split_files(root / "pool", [s for s in specs if s.split == "pool"], ("pool",))
    if any(s.split == "openclass" for s in specs):
        _write_split_files(root / "openclass", [s for s in specs if s.split == "openclass"], ("openclass",))
    marker.write_text(fingerprint)
    return root
