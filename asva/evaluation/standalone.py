"""`sweeps/evaluate.py`: evaluate a trained job with the papers' protocol, apart from training.

The model comes from a finished job run (`run_id=...`: its logged config and the adapter checkpoint
the job left in `paths.runs_dir`) or from an adapter checkpoint file (`checkpoint=...`, with the
job's settings given as overrides). The 3-clips-per-video protocol (asva/evaluation/protocol.py)
picks the test clips, which a job samples too. They are sampled and scored as in a job, by the same
sampler (asva/evaluation/generation.py) and scorer (asva/evaluation/scoring.py): the generated
clips are saved batch by batch under `paths.cache_dir/generated/`, so the metrics can be recomputed
(new networks, a changed metric) without sampling again, an interrupted evaluation resumes, and
the clips a job generated are reused. Under torchrun or a multi-task SLURM step the ranks share the
sampling out and rank 0 scores and logs. Every metric (asva/evaluation/paper_metrics.py, plus the
skeleton's event_sync and fd_pixel_synth) goes to the job's run, or with `checkpoint=` to a new run
of role `evaluate`, with a per-class table artifact. A metric the clips cannot score (event_sync
without event times, as on the real datasets) is not computed and is named in one log line with
the reason, as in a job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch
import yaml
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asva import distributed
from asva.config.build import build_config
from asva.config.commands import EvaluateConfig
from asva.config.parse import parse_k
from asva.config.schema import ExperimentConfig
from asva.config.validate import check_files_and_device
from asva.data import sources
from asva.data.audio import fbank_frames
from asva.data.dataset import job_pool, load_split
from asva.errors import ConfigError, DataError
from asva.evaluation.generation import generate, model_key
from asva.evaluation.networks import evaluation_networks
from asva.evaluation.protocol import evaluation_clips
from asva.evaluation.scoring import log_skipped, score
from asva.files import load_torch
from asva.models.asva_model import ASVAModel
from asva.tracking.runs import RunLogger, client, config_hash
from asva.tracking.store import GROUNDTRUTH_SUFFIX
from asva.training.components import build_model
from asva.training.pretrain import pretrained_adapters

log = logging.getLogger(__name__)

ROLE_EVALUATE = "evaluate"
FINETUNE_CHECKPOINT = "finetune.pt"  # what asva/experiment.py names the job's adapter checkpoint
# Keys runs logged under an earlier schema, by the prefix they are read under now.
RENAMED_PREFIXES = {"audio.encoder_a.": "audio.encoders.a.", "audio.encoder_b.": "audio.encoders.b."}


def _current_key(key: str) -> str:
    for old, new in RENAMED_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


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
    flat = {_current_key(key[len("cfg.") :]): value for key, value in params.items() if key.startswith("cfg.")}
    if not flat:
        raise ConfigError(f"run_id: run {run_id} has no cfg.* params (not a job run)")
    config = OmegaConf.structured(ExperimentConfig)
    for key, value in flat.items():
        try:
            OmegaConf.update(config, key, _parse(value), merge=False)
        except (OmegaConfBaseException, yaml.YAMLError):  # a key of an older or newer schema: keep the default
            log.warning("run %s: config key %s=%s not applied", run_id, key, value)
    return build_config(config)


def _experiment_part(cfg: EvaluateConfig) -> ExperimentConfig:
    names = {f.name for f in fields(ExperimentConfig)}
    return ExperimentConfig(**{name: getattr(cfg, name) for name in names})


def restore_model(cfg: ExperimentConfig, adapters: dict[str, torch.Tensor] | None) -> ASVAModel:
    """The job's model: its frozen parts (cached) and the given adapter weights (None: stage 1's)."""
    cache_dir = Path(cfg.paths.cache_dir)
    root = sources.benchmark_root(cfg.data, cache_dir)
    pool, _ = job_pool(cfg.data, root, cache_dir)
    model = build_model(cfg, pool, cache_dir, fbank_frames(cfg.data.clip_seconds, cfg.data.sample_rate))
    if adapters is None:
        if not cfg.pretrain:
            raise ConfigError("checkpoint: a job without stage 1 needs its adapter checkpoint")
        _, adapters = pretrained_adapters(cfg, model, pool, cache_dir, None)
    model.load_adapter_state_dict(adapters)
    return model.eval()


def run_evaluation(cfg: EvaluateConfig) -> dict[str, float] | None:
    """Resolve the model, generate (or reuse) the clips, score them and log everything; returns the
    metrics (None on the ranks other than 0 of a multi-rank evaluation: they only sample)."""
    if cfg.run_id is not None:
        # This machine's caches and run folders, and this evaluation's settings (checked again with the job's).
        experiment = replace(config_of_run(cfg.run_id), paths=cfg.paths, eval=cfg.eval)
        digest = client().get_run(cfg.run_id).data.params.get("config_hash", "")
        checkpoint = Path(experiment.paths.runs_dir) / experiment.study / digest / FINETUNE_CHECKPOINT
    else:
        experiment = _experiment_part(cfg)
        checkpoint = Path(cfg.checkpoint).expanduser()
        if not checkpoint.is_file():
            raise DataError(f"checkpoint: {checkpoint} does not exist")
    check_files_and_device(experiment)
    finetuned = experiment.finetune and parse_k(experiment.k) != 0
    if finetuned and not checkpoint.is_file():
        raise DataError(f"run_id: the job's adapter checkpoint {checkpoint} is not on this machine (paths.runs_dir)")
    world = distributed.init(experiment.train.distributed_timeout_minutes)
    try:
        return _sample_score_and_log(cfg, experiment, checkpoint, finetuned, world.is_main)
    finally:
        distributed.shutdown()


def _sample_score_and_log(
    cfg: EvaluateConfig, experiment: ExperimentConfig, checkpoint: Path, finetuned: bool, main: bool
) -> dict[str, float] | None:
    cache_dir = Path(experiment.paths.cache_dir)
    if not main:
        log.info(
            "rank %d waits for rank 0 to prepare the data (up to %s minutes: train.distributed_timeout_minutes)",
            distributed.current().rank,
            experiment.train.distributed_timeout_minutes,
        )
        distributed.barrier()
    root = sources.benchmark_root(experiment.data, cache_dir)
    sources.ensure_generated(experiment.data, root)
    train = load_split(root, "train", experiment.data, cache_dir)
    clips = evaluation_clips(root, "test", experiment.data, cache_dir, cfg.clips_per_video)
    if main:
        distributed.barrier()  # the data is ready: the other ranks load it
    adapters = load_torch(checkpoint)["weights"] if finetuned else None
    model = restore_model(experiment, adapters)
    key = model_key(experiment, model)
    generated = generate(model, clips, experiment, key, "sampling evaluation clips", regenerate=cfg.regenerate)
    if not main:
        return None
    nets = evaluation_networks(experiment, train, cache_dir).to(model.placement.device)
    scores = score(experiment, clips, generated, nets, "num_eval_clips", skeleton_references=(GROUNDTRUTH_SUFFIX,))
    log_skipped(scores.skipped, f"evaluation of {experiment.data.name}")
    metrics = scores.metrics

    if cfg.run_id is not None:
        run = RunLogger(cfg.run_id)
    else:
        run = RunLogger.create(experiment.study, ROLE_EVALUATE, f"evaluate {checkpoint.name}")
        run.log_params({"checkpoint": str(checkpoint), "config_hash": config_hash(asdict(experiment))})
    run.log_metrics(metrics)
    run.set_tags({"asva.evaluation": f"protocol: {cfg.clips_per_video} clips per video, 6 FPS"})
    run.log_text(json.dumps(scores.per_class, indent=1) + "\n", "evaluation_per_class.json")
    if cfg.run_id is None:
        run.finish()
    log.info("metrics: %s", {k: round(v, 3) for k, v in metrics.items()})
    return metrics
