"""Typed experiment configuration.

These dataclasses are the Hydra structured-config schema: Hydra rejects an unknown key or a value of
the wrong type while composing, and `validate` rejects impossible values, both before any compute.
The top-level fields are the knobs the ablations sweep; the nested groups mirror `asva/`'s packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class SyntheticConfig:
    """The embedded benchmark: generated, deterministic from `seed` (see asva/data/synthetic.py)."""

    seed: int = 0
    benchmark_classes: list[str] = field(
        default_factory=lambda: ["hammer", "ball_bounce", "drum", "lamp_flash"]
    )
    # Classes that exist only in the noisy pretraining pool (as VGGSound holds classes AVSync15 lacks).
    pool_only_classes: list[str] = field(default_factory=lambda: ["clapper", "bell"])
    train_per_class: int = 90
    test_per_class: int = 10
    pool_per_class: int = 40
    # Share of pool clips that are broken in one of the ways real web video is.
    pool_misaligned_fraction: float = 0.25
    pool_distractor_fraction: float = 0.15
    pool_static_fraction: float = 0.15


@dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | avsync15 | avsync48
    # Dataset folder. For `synthetic`, None means "generate it under paths.cache_dir".
    root: Optional[str] = None
    # Pretraining pool folder (VGGSound-like); None for synthetic means the generated pool.
    pool_root: Optional[str] = None
    fps: int = 6
    clip_seconds: float = 2.0
    frame_size: int = 32
    sample_rate: int = 16000
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class AudioEncoderConfig:
    # tiny_semantic: classification-trained stand-in for ImageBind audio (encoder "a");
    # tiny_masked: masked-spectrogram stand-in for BEATs (encoder "b").
    kind: str = "tiny_semantic"
    num_layers: int = 12
    dim: int = 64
    # Seconds of audio per token (the token stride of the encoder's time axis).
    token_seconds: float = 0.04
    checkpoint: Optional[str] = None  # a trained encoder; None: train the stand-in once and cache it
    train_steps: int = 100
    lr: float = 2e-3


@dataclass
class AudioConfig:
    # The fbank front-end is fixed by the encoders (asva/data/audio.py: 128 mel, 25 ms / 10 ms).
    encoder_a: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    encoder_b: AudioEncoderConfig = field(
        default_factory=lambda: AudioEncoderConfig(kind="tiny_masked")
    )


@dataclass
class ModelConfig:
    name: str = "tiny"  # the embedded video diffusion UNet (asva/models/tiny_unet.py)
    channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])
    heads: int = 4
    context_dim: int = 64  # width of text/image/audio tokens seen by cross-attention
    latent_downsample: int = 8  # patch size of the linear patch autoencoder (first stage)
    latent_channels: int = 16
    base_checkpoint: Optional[str] = None  # frozen base; None: train it once and cache it
    base_train_steps: int = 300
    base_lr: float = 2e-3
    base_batch_size: int = 16


@dataclass
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    # v-prediction weighs the high-noise steps, where the timing of motion is decided, far more
    # than epsilon-prediction does (the DynamiCrafter 512 model predicts v as well).
    prediction_type: str = "v_prediction"
    sampling_steps: int = 20
    guidance_image: float = 2.0
    guidance_text: float = 2.0
    guidance_audio: float = 4.0
    # Probability of dropping each condition independently in training (classifier-free guidance).
    cond_drop: float = 0.05


@dataclass
class StageConfig:
    """One training stage of the audio adapters. Set exactly one of `epochs` and `steps`."""

    lr: float = 1e-3
    batch_size: int = 16
    epochs: Optional[int] = None
    steps: Optional[int] = 300
    checkpoint_every: int = 100


@dataclass
class TrainConfig:
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-3, steps=300))
    finetune: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-3, steps=300))
    num_threads: int = 0  # torch threads; 0 keeps torch's default


@dataclass
class EvalConfig:
    max_test_clips: Optional[int] = None  # None: the whole test split
    batch_size: int = 20
    num_sample_videos: int = 4  # generated mp4s (with audio) logged per run
    # 0: an onset counts only on the exact frame of its sound (+-1 frame lets wrongly timed motion
    # score about half of the ground truth, see asva/evaluation/event_sync.py).
    sync_tolerance_frames: int = 0


@dataclass
class PathsConfig:
    # Trained-once components (synthetic data, stand-in encoders, base, pretrained adapters).
    cache_dir: str = ".asva_cache"
    # Per-run checkpoints for resume.
    runs_dir: str = ".asva_runs"


@dataclass
class ExperimentConfig:
    study: str = "adhoc"  # window_radius | kshot | encoder_layers | curation | adhoc
    seed: int = 0
    # Few-shot budget: K training videos per class, "all" for the whole split, 0 for no finetuning.
    k: str = "all"
    pretrain: bool = False  # stage 1 on the noisy pool before finetuning
    finetune: bool = True
    curation: str = "auto"  # auto | none: automatic curation of the pretraining pool
    window_radius: float = 1.5  # in units of 1/FPS
    audio_layers: str = "a:11"  # e.g. a:3-7-11+b:3-7-11
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
