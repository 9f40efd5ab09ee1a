"""The frozen components of the embedded default, each trained once and cached.

On the embedded default there are no pretrained checkpoints, so the frozen parts are trained here
on the pretraining pool, once per configuration (the cache key hashes everything they depend on),
and every later job loads them. Concurrent jobs wait on a file lock instead of training twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from asva.config.hashing import stable_hash
from asva.config.parse import parse_audio_layers
from asva.config.schema import AudioEncoderConfig, DiffusionConfig, ExperimentConfig
from asva.data.dataset import ClipSet
from asva.errors import ConfigError, DataError
from asva.files import build_once, load_torch
from asva.models.asva_model import ASVAModel, ImageToVideoBase
from asva.models.audio_encoders import TinyAudioEncoder
from asva.models.diffusion import drop_masks, noised_batch, training_scheduler
from asva.models.first_stage import frames_to_unit
from asva.models.placement import resolve as resolve_placement
from asva.training.loop import LoopSpec, train_loop

log = logging.getLogger(__name__)

ENCODER_BATCH = 32
# Parts of the cache keys of the trained-once parts: bump one when the same settings would train another.
ENCODER_CACHE_VERSION = "v1"
BASE_CACHE_VERSION = "v1"


def clipset_fingerprint(clips: ClipSet) -> str:
    """Identifies the clips by their files (ids, sizes, modification times) and decoding settings, so
    changed data invalidates caches without reading a frame. A set made in memory (no files) is
    identified by its content."""
    if clips.source:
        return stable_hash(clips.video_ids, clips.source)
    digest = hashlib.sha256()
    for tensor in (clips.frames, clips.audio):
        digest.update(tensor.contiguous().numpy().tobytes())
    return stable_hash(clips.video_ids, digest.hexdigest())


def captions(clips: ClipSet, indices: torch.Tensor | list[int]) -> list[str]:
    return [clips.labels[int(i)].replace("_", " ") for i in indices]


def _load_weights(path: str, what: str) -> dict:
    if not Path(path).is_file():
        raise DataError(f"{what}: checkpoint {path} does not exist")
    return load_torch(path)["weights"]


def pretrained_audio_encoder(name: str, cfg: AudioEncoderConfig) -> torch.nn.Module:
    """ImageBind audio or BEATs from the official file at `cfg.checkpoint`, loaded strictly and frozen."""
    from asva.models.beats import load_beats
    from asva.models.imagebind import TrunkSpec, load_imagebind_audio

    field = f"audio.encoders.{name}.checkpoint"
    expected = "imagebind_huge.pth" if cfg.kind == "imagebind" else "an official BEATs .pt (e.g. BEATs_iter3.pt)"
    if not cfg.checkpoint:
        raise DataError(f"{field}: audio.encoders.{name}.kind={cfg.kind} needs {expected} (nothing is downloaded)")
    if not Path(cfg.checkpoint).is_file():
        raise DataError(f"{field}: {cfg.checkpoint} does not exist (expected {expected})")
    if cfg.kind == "imagebind":
        # imagebind_huge's audio trunk: 768 wide, 12 blocks of 12 heads (64 channels each).
        spec = TrunkSpec(dim=cfg.dim, blocks=cfg.num_layers, heads=max(1, cfg.dim // 64))
        encoder = load_imagebind_audio(cfg.checkpoint, spec)
    else:
        encoder = load_beats(cfg.checkpoint)
    if (encoder.dim, encoder.num_layers) != (cfg.dim, cfg.num_layers):
        raise ConfigError(
            f"audio.encoders.{name}: {cfg.checkpoint} holds {encoder.num_layers} layers of width {encoder.dim}; the config "
            f"says num_layers={cfg.num_layers}, dim={cfg.dim}"
        )
    return encoder.requires_grad_(False).eval()


def audio_encoder(
    name: str, cfg: AudioEncoderConfig, pool: ClipSet | None, cache_dir: Path, seed: int = 0
) -> torch.nn.Module:
    """Encoder `name` ("a" or "b"): ImageBind / BEATs from their files, or the stand-in trained once
    on the pool's audio with its pretext task."""
    if not cfg.kind.startswith("tiny_"):
        return pretrained_audio_encoder(name, cfg)
    encoder = TinyAudioEncoder(cfg.kind, cfg.num_layers, cfg.dim, cfg.token_seconds, num_classes=len(pool.classes))
    if cfg.checkpoint:
        encoder.load_state_dict(_load_weights(cfg.checkpoint, f"audio.encoders.{name}.checkpoint"))
        return encoder.eval()
    config = {k: v for k, v in asdict(cfg).items() if k != "checkpoint"}
    key = stable_hash(config, clipset_fingerprint(pool), seed, ENCODER_CACHE_VERSION)
    path = cache_dir / "encoders" / f"{cfg.kind}-{key}.pt"

    def build() -> dict:
        clips = pool.decoded()
        labels = clips.label_indices()
        torch.manual_seed(seed)
        fresh = TinyAudioEncoder(cfg.kind, cfg.num_layers, cfg.dim, cfg.token_seconds, num_classes=len(pool.classes))
        losses = train_loop(
            fresh,
            list(fresh.parameters()),
            lambda idx, gen: fresh.pretext_loss(clips.fbank[idx], labels[idx], gen),
            len(clips),
            LoopSpec(lr=cfg.lr, batch_size=ENCODER_BATCH, steps=cfg.train_steps),
            seed,
            desc=f"stand-in audio encoder {name} ({cfg.kind}, trained once)",
        )
        log.info("audio encoder %s (%s): pretext loss %.4f -> %.4f", name, cfg.kind, losses[0], losses[-1])
        return {"weights": fresh.state_dict(), "losses": losses}

    encoder.load_state_dict(build_once(path, build)["weights"])
    return encoder.eval()


def schedule_fields(cfg: DiffusionConfig) -> dict:
    return {
        "timesteps": cfg.num_train_timesteps,
        "schedule": cfg.beta_schedule,
        "prediction": cfg.prediction_type,
        "betas": [cfg.beta_start, cfg.beta_end, cfg.rescale_betas_zero_snr],
    }


def base_model(cfg: ExperimentConfig, pool: ClipSet | None, cache_dir: Path) -> torch.nn.Module:
    """The frozen image-to-video base: DynamiCrafter from model.base_checkpoint (model=dynamicrafter_*),
    or the embedded base, trained once on the pool as an image animation model."""
    model_cfg = cfg.model
    if model_cfg.name == "dynamicrafter":
        # The paper's base: DynamiCrafter's official model.ckpt, every part loaded strictly, never trained.
        from asva.models.paper_model import frame_stride_input, load_dynamicrafter_base

        stride = frame_stride_input(model_cfg.variant, model_cfg.frame_stride, cfg.data.source_fps, cfg.data.fps)
        log.info("DynamiCrafter %s: frame-stride input fs = %d (docs/paper_model.md)", model_cfg.variant, stride)
        return load_dynamicrafter_base(model_cfg.variant, model_cfg.base_checkpoint, stride, model_cfg.paper_width)
    base = ImageToVideoBase(model_cfg)
    if model_cfg.base_checkpoint:
        base.load_state_dict(_load_weights(model_cfg.base_checkpoint, "model.base_checkpoint"))
        return base.eval()
    config = {k: v for k, v in asdict(model_cfg).items() if k != "base_checkpoint"}
    key = stable_hash(
        config, schedule_fields(cfg.diffusion), cfg.diffusion.cond_drop, clipset_fingerprint(pool), BASE_CACHE_VERSION
    )
    path = cache_dir / "base" / f"tiny-{key}.pt"

    def build() -> dict:
        clips = pool.decoded()
        torch.manual_seed(0)
        fresh = ImageToVideoBase(model_cfg)
        fresh.first_stage.fit(frames_to_unit(clips.frames))
        scheduler = training_scheduler(cfg.diffusion)
        latents = fresh.encode_video(clips.frames)

        def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            drop_image, drop_text, _ = drop_masks(len(idx), cfg.diffusion.cond_drop, gen)
            cond = fresh.conditions(clips.frames[idx], captions(clips, idx), drop_image, drop_text)
            noisy, timesteps, target = noised_batch(scheduler, latents[idx], gen)
            return torch.nn.functional.mse_loss(fresh(noisy, timesteps, cond), target)

        losses = train_loop(
            fresh,
            list(fresh.parameters()),
            loss,
            len(clips),
            LoopSpec(lr=model_cfg.base_lr, batch_size=model_cfg.base_batch_size, steps=model_cfg.base_train_steps),
            seed=0,
            desc="frozen image-to-video base (trained once)",
        )
        log.info("base model: loss %.4f -> %.4f", losses[0], losses[-1])
        return {"weights": fresh.state_dict(), "losses": losses}

    base.load_state_dict(build_once(path, build)["weights"])
    return base.eval()


def taps(cfg: ExperimentConfig) -> list[tuple[str, int]]:
    """(encoder, layer) of every tapped layer of `audio_layers`, in order."""
    return [(name, layer) for name, layers in parse_audio_layers(cfg.audio_layers).items() for layer in layers]


def frozen_parts_need_pool(cfg: ExperimentConfig) -> bool:
    """Whether a frozen part is a stand-in that trains on the pretraining pool (no checkpoint given)."""
    stand_in_base = cfg.model.name == "tiny" and not cfg.model.base_checkpoint
    return stand_in_base or any(
        encoder.kind.startswith("tiny_") and not encoder.checkpoint for encoder in tapped_encoders(cfg).values()
    )


def tapped_encoders(cfg: ExperimentConfig) -> dict[str, AudioEncoderConfig]:
    return {name: cfg.audio.encoders[name] for name in sorted({name for name, _ in taps(cfg)})}


def build_model(cfg: ExperimentConfig, pool: ClipSet | None, cache_dir: Path, fbank_frames: int) -> ASVAModel:
    """The job's model: its frozen parts (loaded from their checkpoints, or the stand-ins trained once on
    the pool and cached) and fresh adapters drawn from `cfg.seed`, placed on `train.device` in
    `train.precision` (asva/models/placement.py). Every entry point builds it here."""
    if pool is None and frozen_parts_need_pool(cfg):
        raise DataError("data.pool_root: the frozen stand-in parts train on a pretraining pool; none is configured")
    encoders = {name: audio_encoder(name, encoder, pool, cache_dir) for name, encoder in tapped_encoders(cfg).items()}
    model = ASVAModel(
        base_model(cfg, pool, cache_dir), encoders, taps(cfg), cfg.window_radius, cfg.data.fps, cfg.model, fbank_frames
    )
    model.reset_adapters(cfg.seed)
    placement = resolve_placement(cfg.train.device, cfg.train.precision)
    log.info("model on %s (%s)", placement.device, "bf16-mixed" if placement.mixed else "fp32")
    return model.place(placement, cfg.train.gradient_checkpointing)
