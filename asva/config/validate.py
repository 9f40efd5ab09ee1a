"""Checks that no value is impossible, before any compute. Each error names its key."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from asva.config.schema import ExperimentConfig, StageConfig, SyncClassifierConfig, TrackingConfig
from asva.errors import ConfigError

KNOWN_DATASETS = ("synthetic", "avsync15", "avsync48")
KNOWN_MODELS = ("tiny", "dynamicrafter")
KNOWN_VARIANTS = ("256", "512")
KNOWN_ENCODER_KINDS = ("tiny_semantic", "tiny_masked", "imagebind", "beats")
KNOWN_CURATION = ("auto", "none")
KNOWN_TRACKING_BACKENDS = ("sqlite", "server")
ENCODER_NAMES = ("a", "b")
KNOWN_DEVICES = ("auto", "cpu", "cuda")
KNOWN_PRECISIONS = ("auto", "fp32", "bf16-mixed")
KNOWN_SYNC_CLASSIFIERS = ("asva_small", "avsyncd")  # docs/metrics.md

_LAYER_SPEC = re.compile(r"^[a-z]:\d+(-\d+)*$")

# The feature sets of scaling-up-asva Fig. 4a by their paper names (encoder a = ImageBind audio,
# b = BEATs; 0-based block indices). They are values of `audio_layers`, not a config group, so
# `audio_layers=ib11` and `audio_layers=a:11` are the same override and the same config.
AUDIO_LAYER_PRESETS = {
    "ib11": "a:11",
    "ib7-9-11": "a:7-9-11",
    "ib3-7-11": "a:3-7-11",
    "ib3-7-11+beats3-7-11": "a:3-7-11+b:3-7-11",
}


def parse_audio_layers(spec: str) -> dict[str, list[int]]:
    """`a:3-7-11+b:3-7-11` (or its preset name) -> {"a": [3, 7, 11], "b": [3, 7, 11]} (0-based)."""
    spec = AUDIO_LAYER_PRESETS.get(spec, spec)
    layers: dict[str, list[int]] = {}
    for part in spec.replace(" ", "").split("+"):
        if not _LAYER_SPEC.match(part):
            raise ConfigError(
                f"audio_layers: cannot read {spec!r}; write e.g. 'a:11', 'a:3-7-11' or 'a:3-7-11+b:3-7-11', "
                f"or a preset: {', '.join(AUDIO_LAYER_PRESETS)}"
            )
        name, indices = part.split(":")
        if name not in ENCODER_NAMES:
            raise ConfigError(f"audio_layers: unknown encoder {name!r} in {spec!r} (known: a, b)")
        if name in layers:
            raise ConfigError(f"audio_layers: encoder {name!r} appears twice in {spec!r}")
        layers[name] = [int(i) for i in indices.split("-")]
    return layers


def parse_k(k: str) -> int | None:
    """K videos per class; None means the whole training split."""
    if str(k) == "all":
        return None
    try:
        value = int(k)
    except ValueError:
        raise ConfigError(f"k: must be a whole number >= 0 or 'all', got {k!r}") from None
    if value < 0:
        raise ConfigError(f"k: must be >= 0 or 'all', got {value}")
    return value


def _check_stage(name: str, stage: StageConfig) -> None:
    if (stage.epochs is None) == (stage.steps is None):
        raise ConfigError(f"{name}: set exactly one of epochs and steps (the other to null)")
    for key in ("epochs", "steps"):
        value = getattr(stage, key)
        if value is not None and value <= 0:
            raise ConfigError(f"{name}.{key}: must be > 0, got {value}")
    if stage.lr <= 0:
        raise ConfigError(f"{name}.lr: must be > 0, got {stage.lr}")
    if stage.batch_size <= 0:
        raise ConfigError(f"{name}.batch_size: must be > 0, got {stage.batch_size}")
    if stage.checkpoint_every <= 0:
        raise ConfigError(f"{name}.checkpoint_every: must be > 0, got {stage.checkpoint_every}")
    if stage.checkpoint_minutes is not None and stage.checkpoint_minutes <= 0:
        raise ConfigError(f"{name}.checkpoint_minutes: must be > 0 (or null), got {stage.checkpoint_minutes}")
    if stage.lr_warmup_steps < 0:
        raise ConfigError(f"{name}.lr_warmup_steps: must be >= 0, got {stage.lr_warmup_steps}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: must be > 0, got {value}")


def check_sync_classifier(sync: SyncClassifierConfig, key: str, clip_seconds: float) -> None:
    """The settings of the classifier `sync.kind` selects (`key`: where it sits in the config)."""
    if sync.kind not in KNOWN_SYNC_CLASSIFIERS:
        raise ConfigError(f"{key}.kind: must be one of {', '.join(KNOWN_SYNC_CLASSIFIERS)}, got {sync.kind!r}")
    if sync.kind == "avsyncd":
        paper = sync.avsyncd
        for name in ("image_size", "shift_seconds", "temperature", "steps", "lr", "batch_size"):
            _positive(f"{key}.avsyncd.{name}", getattr(paper, name))
        if paper.num_clips < 2:
            raise ConfigError(
                f"{key}.avsyncd.num_clips: must be >= 2 (a synchronized and a shifted clip), got {paper.num_clips}"
            )
        if paper.warmup_steps < 0:
            raise ConfigError(f"{key}.avsyncd.warmup_steps: must be >= 0, got {paper.warmup_steps}")
        if len(paper.widths) != 4 or min(paper.widths) <= 0 or paper.widths[-1] % 2:
            raise ConfigError(f"{key}.avsyncd.widths: four stage widths > 0, the last even, got {list(paper.widths)}")
        return
    for name in ("steps", "lr", "batch_size", "temperature", "window_seconds", "max_shift_seconds", "head_dim"):
        _positive(f"{key}.{name}", getattr(sync, name))
    # Windows are cut at the 6-FPS evaluation rate: a window shifted both ways must fit in a clip.
    window, shift = max(1, round(sync.window_seconds * 6)), max(1, round(sync.max_shift_seconds * 6))
    if window + 2 * shift > round(clip_seconds * 6):
        raise ConfigError(
            f"{key}.window_seconds: a {sync.window_seconds:g} s window shifted by up to "
            f"{sync.max_shift_seconds:g} s each way does not fit in a {clip_seconds:g} s clip"
        )
    for name in ("video_widths", "audio_widths"):
        if not getattr(sync, name) or min(getattr(sync, name)) <= 0:
            raise ConfigError(f"{key}.{name}: needs at least one width, all > 0")


def check_tracking(tracking: TrackingConfig) -> None:
    """The tracking store's settings (sweeps/conf/tracking/)."""
    if tracking.backend not in KNOWN_TRACKING_BACKENDS:
        raise ConfigError(f"tracking.backend: must be one of {KNOWN_TRACKING_BACKENDS}, got {tracking.backend!r}")
    if tracking.backend == "server" and not str(tracking.uri or "").startswith(("http://", "https://")):
        raise ConfigError(f"tracking.uri: the server backend needs the server's http(s) address, got {tracking.uri!r}")
    if tracking.backend == "sqlite" and tracking.uri is not None and not tracking.uri.startswith("sqlite:///"):
        raise ConfigError(f"tracking.uri: the sqlite backend needs a sqlite:/// URI (or null), got {tracking.uri!r}")


def validate_curation_filters(filters, key: str) -> None:
    """The curation settings (asva/data/curation.py); `key` is where they sit in the config."""
    if filters.workers is not None and filters.workers < 1:
        raise ConfigError(f"{key}.workers: must be >= 1, got {filters.workers}")
    if filters.raft_variant not in ("small", "large"):
        raise ConfigError(f"{key}.raft_variant: must be small or large, got {filters.raft_variant!r}")
    if filters.text_detector not in ("craft", "tesseract"):
        raise ConfigError(f"{key}.text_detector: must be craft or tesseract, got {filters.text_detector!r}")
    if filters.craft_weights and not Path(filters.craft_weights).is_file():
        raise ConfigError(f"{key}.craft_weights: {filters.craft_weights} does not exist")
    if not 0 <= filters.flow_quantile <= 1:
        raise ConfigError(f"{key}.flow_quantile: must be within [0, 1], got {filters.flow_quantile}")
    for name in ("min_seconds", "flow_pairs", "text_frames", "analysis_side", "scene_threshold", "max_flow"):
        _positive(f"{key}.{name}", getattr(filters, name))
    if filters.max_frame_interval_spread is not None:
        _positive(f"{key}.max_frame_interval_spread", filters.max_frame_interval_spread)
    for name in ("min_audio_rms", "min_flow"):
        if getattr(filters, name) < 0:
            raise ConfigError(f"{key}.{name}: must be >= 0 (0: not checked), got {getattr(filters, name)}")


def paper_recipe_warning(cfg: ExperimentConfig) -> str | None:
    """A warning for a paper-model job trained by steps (the embedded recipe, which `model=dynamicrafter_*`
    alone keeps) rather than by the paper's epochs (scaling-up-asva Section 5.1); it names the preset."""
    if cfg.model.name != "dynamicrafter":
        return None
    stages = {"pretrain": (cfg.pretrain, cfg.train.pretrain), "finetune": (cfg.finetune, cfg.train.finetune)}
    by_steps = [f"train.{name}.steps={stage.steps}" for name, (runs, stage) in stages.items() if runs and stage.steps]
    if not by_steps:
        return None
    return (
        f"model.name=dynamicrafter trains by steps ({', '.join(by_steps)}), not by the paper's epochs: "
        f"experiment=paper_{cfg.data.fps}fps sets the paper's recipe, curation and evaluation (docs/paper_model.md)"
    )


def validate(cfg: ExperimentConfig) -> None:
    """Raise ConfigError naming the first impossible value."""
    _positive("window_radius", cfg.window_radius)
    check_tracking(cfg.tracking)
    parse_k(cfg.k)
    cfg.audio_layers = AUDIO_LAYER_PRESETS.get(cfg.audio_layers, cfg.audio_layers)
    layers = parse_audio_layers(cfg.audio_layers)
    for name, indices in layers.items():
        encoder = getattr(cfg.audio, f"encoder_{name}")
        for index in indices:
            if not 0 <= index < encoder.num_layers:
                raise ConfigError(
                    f"audio_layers: layer {index} of encoder {name!r} does not exist "
                    f"(audio.encoder_{name}.num_layers = {encoder.num_layers})"
                )
    if not cfg.pretrain and not cfg.finetune:
        raise ConfigError("finetune: with pretrain=false and finetune=false nothing would be trained")
    if cfg.curation not in KNOWN_CURATION:
        raise ConfigError(f"curation: must be one of {KNOWN_CURATION}, got {cfg.curation!r}")
    validate_curation_filters(cfg.curation_filters, "curation_filters")

    if cfg.data.name not in KNOWN_DATASETS:
        raise ConfigError(f"data.name: must be one of {KNOWN_DATASETS}, got {cfg.data.name!r}")
    if cfg.data.name != "synthetic" and cfg.data.root is None:
        raise ConfigError(f"data.root: dataset {cfg.data.name!r} needs the path of its folder")
    if cfg.data.fps not in (6, 12):
        raise ConfigError(f"data.fps: must be 6 or 12, got {cfg.data.fps}")
    _positive("data.clip_seconds", cfg.data.clip_seconds)
    _positive("data.source_fps", cfg.data.source_fps)
    if cfg.data.frame_size % cfg.model.latent_downsample:
        raise ConfigError(
            f"data.frame_size: {cfg.data.frame_size} is not a multiple of "
            f"model.latent_downsample={cfg.model.latent_downsample}"
        )
    if cfg.data.sample_rate != 16000:
        raise ConfigError(f"data.sample_rate: the audio encoders expect 16000 Hz, got {cfg.data.sample_rate}")
    synthetic = cfg.data.synthetic
    for key in ("train_per_class", "test_per_class", "pool_per_class"):
        _positive(f"data.synthetic.{key}", getattr(synthetic, key))
    if synthetic.video_seconds < cfg.data.clip_seconds:
        raise ConfigError(
            f"data.synthetic.video_seconds: {synthetic.video_seconds} is shorter than one clip (data.clip_seconds={cfg.data.clip_seconds})"
        )
    if not isinstance(synthetic.openclass_per_class, int) or synthetic.openclass_per_class < 0:
        raise ConfigError(
            f"data.synthetic.openclass_per_class: must be an integer >= 0, got {synthetic.openclass_per_class}"
        )
    fractions = [key for key in vars(synthetic) if key.startswith("pool_") and key.endswith("_fraction")]
    for key in fractions:
        if not 0 <= getattr(synthetic, key) <= 1:
            raise ConfigError(f"data.synthetic.{key}: must be within [0, 1], got {getattr(synthetic, key)}")
    if sum(getattr(synthetic, key) for key in fractions) > 1:
        raise ConfigError(f"data.synthetic: the pool defect fractions ({', '.join(fractions)}) add up to more than 1")
    if cfg.data.pool_format not in ("avsync", "vggsound"):
        raise ConfigError(f"data.pool_format: must be avsync or vggsound, got {cfg.data.pool_format!r}")
    if cfg.data.train_clip_start not in ("uniform", "start"):
        raise ConfigError(f"data.train_clip_start: must be uniform or start, got {cfg.data.train_clip_start!r}")
    if cfg.data.decode not in ("auto", "stream", "memory"):
        raise ConfigError(f"data.decode: must be auto, stream or memory, got {cfg.data.decode!r}")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"data.num_workers: must be >= 0, got {cfg.data.num_workers}")
    if cfg.data.prefetch_factor < 1:
        raise ConfigError(f"data.prefetch_factor: must be >= 1, got {cfg.data.prefetch_factor}")
    if cfg.data.pool_manifest is not None and not Path(cfg.data.pool_manifest).is_file():
        raise ConfigError(f"data.pool_manifest: {cfg.data.pool_manifest} does not exist")

    for name in ENCODER_NAMES:
        encoder = getattr(cfg.audio, f"encoder_{name}")
        if encoder.kind not in KNOWN_ENCODER_KINDS:
            raise ConfigError(f"audio.encoder_{name}.kind: must be one of {KNOWN_ENCODER_KINDS}, got {encoder.kind!r}")
        _positive(f"audio.encoder_{name}.num_layers", encoder.num_layers)
        _positive(f"audio.encoder_{name}.token_seconds", encoder.token_seconds)

    if cfg.model.name not in KNOWN_MODELS:
        raise ConfigError(f"model.name: must be one of {KNOWN_MODELS}, got {cfg.model.name!r}")
    if cfg.model.variant not in KNOWN_VARIANTS:
        raise ConfigError(f"model.variant: must be one of {KNOWN_VARIANTS}, got {cfg.model.variant!r}")
    if cfg.model.paper_width not in ("full", "tiny"):
        raise ConfigError(f"model.paper_width: must be 'full' or 'tiny', got {cfg.model.paper_width!r}")
    if cfg.model.frame_stride is not None:
        _positive("model.frame_stride", cfg.model.frame_stride)
    if cfg.model.context_dim % cfg.model.heads:
        raise ConfigError(f"model.heads: {cfg.model.heads} does not divide model.context_dim={cfg.model.context_dim}")

    diffusion = cfg.diffusion
    if diffusion.prediction_type not in ("epsilon", "v_prediction"):
        raise ConfigError(
            f"diffusion.prediction_type: must be epsilon or v_prediction, got {diffusion.prediction_type!r}"
        )
    if not 0 < diffusion.sampling_steps <= diffusion.num_train_timesteps:
        raise ConfigError(
            f"diffusion.sampling_steps: must be within 1..{diffusion.num_train_timesteps}, "
            f"got {diffusion.sampling_steps}"
        )
    if not 0 <= diffusion.ddim_eta <= 1:
        raise ConfigError(f"diffusion.ddim_eta: must be within [0, 1], got {diffusion.ddim_eta}")
    if not 0 <= diffusion.cond_drop < 1:
        raise ConfigError(f"diffusion.cond_drop: must be within [0, 1), got {diffusion.cond_drop}")
    for key in ("guidance_image", "guidance_text", "guidance_audio"):
        if getattr(diffusion, key) < 0:
            raise ConfigError(f"diffusion.{key}: must be >= 0, got {getattr(diffusion, key)}")

    _check_stage("train.pretrain", cfg.train.pretrain)
    _check_stage("train.finetune", cfg.train.finetune)
    if cfg.train.device not in KNOWN_DEVICES:
        raise ConfigError(f"train.device: must be one of {', '.join(KNOWN_DEVICES)}, got {cfg.train.device!r}")
    if cfg.train.precision not in KNOWN_PRECISIONS:
        raise ConfigError(f"train.precision: must be one of {', '.join(KNOWN_PRECISIONS)}, got {cfg.train.precision!r}")
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda, but torch finds no CUDA device here (use auto or cpu)")
    if cfg.train.distributed_timeout_minutes <= 0:
        raise ConfigError(
            f"train.distributed_timeout_minutes: must be > 0, got {cfg.train.distributed_timeout_minutes}"
        )
    if cfg.eval.max_test_clips is not None:
        _positive("eval.max_test_clips", cfg.eval.max_test_clips)
    _positive("eval.batch_size", cfg.eval.batch_size)
    networks = cfg.eval.networks
    for key in ("video_net_steps", "embedder_steps", "lr", "batch_size"):
        _positive(f"eval.networks.{key}", getattr(networks, key))
    sync = networks.sync_classifier
    check_sync_classifier(sync, "eval.networks.sync_classifier", cfg.data.clip_seconds)
    if cfg.eval.paper_metrics and sync.kind == "avsyncd":
        if not sync.checkpoint:
            raise ConfigError(
                "eval.networks.sync_classifier.checkpoint: kind avsyncd needs the released classifier folder "
                "(.../checkpoint-40000/modules) or a file from sweeps/train_sync_classifier.py classifier.kind=avsyncd"
            )
        if not Path(sync.checkpoint).expanduser().exists():
            raise ConfigError(f"eval.networks.sync_classifier.checkpoint: {sync.checkpoint} does not exist")
    if not networks.video_net_widths or min(networks.video_net_widths) <= 0:
        raise ConfigError("eval.networks.video_net_widths: needs at least one width, all > 0")
