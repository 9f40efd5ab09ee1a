"""`sweeps/evaluate.py`: evaluate a trained job with the papers' protocol, apart from training.

The model comes from a finished job run (`run_id=...`: its logged config and the adapter checkpoint
the job left in `paths.runs_dir`) or from an adapter checkpoint file (`checkpoint=...`, with the
job's settings given as overrides). The 3-clips-per-video protocol (asva/evaluation/protocol.py)
picks the test clips; generated clips are cached under `paths.cache_dir/generated/`, so the metrics
can be recomputed (new networks, a changed metric) without sampling again. Every metric
(asva/evaluation/paper_metrics.py, plus the skeleton's event_sync and fd_pixel_synth) goes to the
job's run, or with `checkpoint=` to a new run of role `evaluate`, with a per-class table artifact.
A metric the clips cannot score (event_sync without event times, as on the real datasets) is not
computed and is named in one log line with the reason, as in a job (asva/evaluation/evaluate.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from asva.config.hashing import stable_hash
from asva.config.schema import EvaluateConfig, ExperimentConfig
from asva.config.validate import parse_k, validate
from asva.data import sources
from asva.data.dataset import ClipSet, load_pool, load_split
from asva.errors import ConfigError, DataError
from asva.evaluation.evaluate import log_skipped, skeleton_metrics
from asva.evaluation.networks import evaluation_networks
from asva.evaluation.paper_metrics import REFERENCES, paper_scores, per_class_rows
from asva.evaluation.protocol import evaluation_clips
from asva.evaluation.sampling import sample
from asva.models.asva_model import ASVAModel
from asva.progress import progress
from asva.tracking.runs import RunLogger, client, config_hash
from asva.training.checkpoint import load_checkpoint, save_checkpoint
from asva.training.components import build_model
from asva.training.pretrain import pretrained_adapters

log = logging.getLogger(__name__)

ROLE_EVALUATE = "evaluate"
FINETUNE_CHECKPOINT = "finetune.pt"  # what asva/experiment.py names the job's adapter checkpoint


def _parse(value: str):
    if value == "None":
        return None
    return yaml.safe_load(value)


def config_of_run(run_id: str) -> ExperimentConfig:
    """The ExperimentConfig a job ran with, rebuilt from its `cfg.*` params."""
    try:
        params = client().get_run(run_id).data.params
    except MlflowException:
        raise ConfigError(f"run_id: no run {run_id} in the tracking store {client().tracking_uri}") from None
    flat = {key[len("cfg.") :]: value for key, value in params.items() if key.startswith("cfg.")}
    if not flat:
        raise ConfigError(f"run_id: run {run_id} has no cfg.* params (not a job run)")
    config = OmegaConf.structured(ExperimentConfig)
    for key, value in flat.items():
        try:
            OmegaConf.update(config, key, _parse(value), merge=False)
        except Exception:  # a key of an older or newer schema: keep the current default
            log.warning("run %s: config key %s=%s not applied", run_id, key, value)
    return OmegaConf.to_object(config)


def _experiment_part(cfg: EvaluateConfig) -> ExperimentConfig:
    names = {f.name for f in fields(ExperimentConfig)}
    return ExperimentConfig(**{name: getattr(cfg, name) for name in names})


def restore_model(cfg: ExperimentConfig, adapters: dict[str, torch.Tensor] | None, train: ClipSet) -> ASVAModel:
    """The job's model: its frozen parts (cached) and the given adapter weights (None: stage 1's)."""
    cache_dir = Path(cfg.paths.cache_dir)
    root = sources.benchmark_root(cfg.data, cache_dir)
    pool_path = sources.pool_root(cfg.data, root)
    pool = load_pool(cfg.data, pool_path, cache_dir) if pool_path else None
    model = build_model(cfg, pool, cache_dir, train.fbank.shape[1])
    if adapters is None:
        if not cfg.pretrain:
            raise ConfigError("checkpoint: a job without stage 1 needs its adapter checkpoint")
        _, adapters = pretrained_adapters(cfg, model, pool, cache_dir, None)
    model.load_adapter_state_dict(adapters)
    return model.eval()


def generated_clips(model: ASVAModel, clips: ClipSet, cfg: ExperimentConfig, model_key: str, regenerate: bool) -> np.ndarray:
    """Sample every evaluation clip (cached by model, clips and sampling settings)."""
    key = stable_hash(model_key, clips.video_ids, asdict(cfg.diffusion), cfg.seed, "v1")
    path = Path(cfg.paths.cache_dir) / "generated" / f"{key}.pt"
    if path.is_file() and not regenerate:
        cached = load_checkpoint(path)
        if cached["clip_ids"] == clips.video_ids:
            log.info("generated clips from the cache: %s", path)
            return cached["frames"]
    features = model.encode_audio(clips.fbank, clips.audio, cfg.data.sample_rate)
    captions = [label.replace("_", " ") for label in clips.labels]
    out = []
    for start in progress(range(0, len(clips), cfg.eval.batch_size), desc="sampling evaluation clips", unit="batch"):
        index = torch.arange(start, min(start + cfg.eval.batch_size, len(clips)))
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + start)
        out.append(sample(model, clips.frames[index], features.select(index), [captions[i] for i in index], cfg.diffusion, generator))
    frames = torch.cat(out).numpy()
    save_checkpoint(path, {"clip_ids": clips.video_ids, "frames": frames})
    return frames


def score(cfg: ExperimentConfig, clips: ClipSet, generated: np.ndarray, train: ClipSet) -> tuple[dict[str, float], list[dict]]:
    """Every metric of the generated clips, with the reference rows, and the per-class table."""
    real = clips.frames.numpy()
    metrics, skipped = skeleton_metrics(clips, {"": generated, REFERENCES["groundtruth"]: real}, cfg)
    metrics["num_eval_clips"] = float(len(clips))
    nets = evaluation_networks(cfg, train, Path(cfg.paths.cache_dir))
    captions = [label.replace("_", " ") for label in clips.labels]
    scores = paper_scores(nets, real, clips.fbank, captions, generated, cfg.data.fps)
    metrics.update(scores.metrics)
    skipped.update(scores.skipped)
    log_skipped(skipped, f"evaluation of {cfg.data.name}")
    return metrics, per_class_rows(clips.labels, scores.per_clip)


def run_evaluation(cfg: EvaluateConfig) -> dict[str, float]:
    """Resolve the model, generate (or reuse) the clips, score them and log everything."""
    if (cfg.run_id is None) == (cfg.checkpoint is None):
        raise ConfigError("run_id / checkpoint: give exactly one of them")
    if cfg.clips_per_video < 1:
        raise ConfigError(f"clips_per_video: must be >= 1, got {cfg.clips_per_video}")
    if cfg.run_id is not None:
        experiment = config_of_run(cfg.run_id)
        experiment.paths = cfg.paths  # where this machine keeps its caches and run folders
        experiment.eval = cfg.eval
        digest = client().get_run(cfg.run_id).data.params.get("config_hash", "")
        checkpoint = Path(experiment.paths.runs_dir) / experiment.study / digest / FINETUNE_CHECKPOINT
    else:
        experiment = _experiment_part(cfg)
        checkpoint = Path(cfg.checkpoint).expanduser()
        if not checkpoint.is_file():
            raise DataError(f"checkpoint: {checkpoint} does not exist")
    validate(experiment)
    finetuned = experiment.finetune and parse_k(experiment.k) != 0
    cache_dir = Path(experiment.paths.cache_dir)
    root = sources.benchmark_root(experiment.data, cache_dir)
    sources.ensure_generated(experiment.data, root)
    train = load_split(root, "train", experiment.data, cache_dir)
    if finetuned and not checkpoint.is_file():
        raise DataError(f"run_id: the job's adapter checkpoint {checkpoint} is not on this machine (paths.runs_dir)")
    adapters = load_checkpoint(checkpoint)["weights"] if finetuned else None
    model = restore_model(experiment, adapters, train)
    model_key = stable_hash(cfg.run_id or str(checkpoint.resolve()), config_hash(asdict(experiment)))
    clips = evaluation_clips(root, "test", experiment.data, cache_dir, cfg.clips_per_video)
    generated = generated_clips(model, clips, experiment, model_key, cfg.regenerate)
    metrics, rows = score(experiment, clips, generated, train)

    if cfg.run_id is not None:
        run = RunLogger(cfg.run_id)
    else:
        run = RunLogger.create(experiment.study, ROLE_EVALUATE, f"evaluate {checkpoint.name}")
        run.log_params({"checkpoint": str(checkpoint), "config_hash": config_hash(asdict(experiment))})
    run.log_metrics(metrics)
    run.set_tags({"asva.evaluation": f"protocol: {cfg.clips_per_video} clips per video, 6 FPS"})
    run.log_text(json.dumps(rows, indent=1) + "\n", "evaluation_per_class.json")
    if cfg.run_id is None:
        run.finish()
    log.info("metrics: %s", {k: round(v, 3) for k, v in metrics.items()})
    return metrics
