"""`python -m asva.generate image=PATH audio=PATH text="..." out=PATH.mp4`: animate one image.

The image is centre-cropped and resized to `data.frame_size`; the audio (any container PyAV reads,
any sample rate, mono or stereo mixed down by averaging) is resampled to 16 kHz and its first
`data.clip_seconds` (from `start=`, in seconds) drive the motion. The mp4 carries that audio.

Further `key=value` arguments are config overrides, as for the sweeps. `adapters=PATH` loads
trained adapter weights (a job's `finetune.ckpt` / `pretrain.ckpt`, or any checkpoint whose
`weights` are an adapter state_dict); without it the adapters are at their zero start and the audio
cannot change the motion (a warning says so). On the embedded default the frozen parts are trained
once on the synthetic pool and cached, exactly as a training job does. On the paper model
(`model=dynamicrafter_6fps` or `_12fps`) every frozen part comes from its checkpoint path
(model.base_checkpoint, audio.encoders.a.checkpoint, audio.encoders.b.checkpoint; docs/paper_model.md).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from asva.config.schema import ExperimentConfig
from asva.errors import ConfigError, DataError, UserError

log = logging.getLogger("asva.generate")
OWN_KEYS = ("image", "audio", "text", "out", "adapters", "seed", "start")
SAMPLE_RATE = 16000


def split_arguments(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    own: dict[str, str] = {}
    overrides = []
    for argument in argv:
        key, sep, value = argument.partition("=")
        if sep and key in OWN_KEYS:
            own[key] = value
        else:
            overrides.append(argument)
    missing = [key for key in ("image", "audio", "out") if key not in own]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)}: required (python -m asva.generate image=PATH audio=PATH text=... out=PATH.mp4)"
        )
    if not own["out"].endswith(".mp4"):
        raise ConfigError(f"out: must name an .mp4 file, got {own['out']!r}")
    return own, overrides


def read_image(path: str, size: int) -> torch.Tensor:
    """[H, W, 3] uint8, centre-cropped to a square and resized to size x size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(f"image: {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"image: {path} is not a readable image ({error})") from None
    height, width, _ = pixels.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = torch.from_numpy(pixels[top : top + side, left : left + side].copy()).permute(2, 0, 1)[None].float()
    resized = F.interpolate(square, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)


def read_clip_audio(path: str, seconds: float, start: float) -> torch.Tensor:
    """[samples] mono float at 16 kHz: `seconds` of sound from `start`."""
    from asva.data.media import read_audio

    if not Path(path).is_file():
        raise DataError(f"audio: {path} does not exist")
    waveform = read_audio(path, SAMPLE_RATE)
    first, needed = int(round(start * SAMPLE_RATE)), int(round(seconds * SAMPLE_RATE))
    available = (len(waveform) - first) / SAMPLE_RATE
    if first < 0 or available < seconds:
        raise DataError(
            f"audio: {path} has {len(waveform) / SAMPLE_RATE:.2f} s; need {seconds:g} s from start={start:g}"
        )
    return torch.from_numpy(np.ascontiguousarray(waveform[first : first + needed], dtype=np.float32))


def build_model(cfg: ExperimentConfig, fbank_frames: int):
    """The ASVA model with fresh adapters. The paper model (model=dynamicrafter_*) loads every frozen part
    from its checkpoint path; the embedded one trains its frozen parts once on the pool (cached)."""
    from asva.data import sources
    from asva.data.dataset import job_pool
    from asva.training.components import build_model as build_job_model
    from asva.training.components import frozen_parts_need_pool

    cache_dir = Path(cfg.paths.cache_dir)
    pool = None
    if frozen_parts_need_pool(cfg):
        root = sources.benchmark_root(cfg.data, cache_dir)
        sources.ensure_generated(cfg.data, root)
        pool, _ = job_pool(cfg.data, root, cache_dir)
    return build_job_model(cfg, pool, cache_dir, fbank_frames)


def load_adapters(model, path: str) -> None:
    from asva.files import load_torch

    if not Path(path).is_file():
        raise DataError(f"adapters: {path} does not exist (expected a job's adapter checkpoint)")
    saved = load_torch(path)
    weights = saved.get("weights", saved) if isinstance(saved, dict) else None
    try:
        model.load_adapter_state_dict(weights)
    except (ValueError, TypeError, AttributeError) as error:
        raise DataError(f"adapters: {path} does not hold this model's adapter weights ({error})") from None


def generate(argv: list[str]) -> Path:
    from asva.config.validate import check_files_and_device
    from asva.data.audio import fbank
    from asva.data.media import write_video
    from asva.evaluation.sampling import denoise, latents_to_frames
    from asva.params import load_config

    own, overrides = split_arguments(argv)
    cfg = load_config(overrides)
    check_files_and_device(cfg)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    image = read_image(own["image"], cfg.data.frame_size)
    waveform = read_clip_audio(own["audio"], cfg.data.clip_seconds, float(own.get("start", 0)))
    frames = round(cfg.data.clip_seconds * cfg.data.fps)
    bank = fbank(waveform[None])
    model = build_model(cfg, bank.shape[1])
    if "adapters" in own:
        load_adapters(model, own["adapters"])
    else:
        log.warning(
            "no adapters=PATH given: the adapters are at their zero start, so the audio cannot change the motion"
        )
    model.eval()
    features = model.encode_audio(bank, waveform[None], SAMPLE_RATE)
    video = image[None, None].expand(1, frames, *image.shape).contiguous()
    generator = torch.Generator().manual_seed(int(own.get("seed", 0)))
    latents = denoise(model, video, features, [own.get("text", "")], cfg.diffusion, generator)
    generated = latents_to_frames(model, latents)
    out = Path(own["out"])
    write_video(out, generated[0].numpy(), cfg.data.fps, audio=waveform.numpy(), sample_rate=SAMPLE_RATE)
    return out


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = generate(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
