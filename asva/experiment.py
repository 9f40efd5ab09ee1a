"""One ablation job, start to finish: data -> frozen parts -> stage 1 -> stage 2 -> evaluation.

Every sweep entry point calls `run_job`. The job is one MLflow run (nested under its sweep's parent
run) that holds the contract's params, the whole flattened config and its hash, the training-loss
curve, the metrics and a few generated videos with their sound.

A killed job resumes when rerun: its finetuning checkpoint and MLflow run id live in
`paths.runs_dir/<study>/<config hash>/`, so the rerun (by hand, or SLURM requeueing a preempted
job) continues the same run from the last checkpoint, logging each training step exactly once.
A configuration that already has a finished run (same `config_hash` param) is not trained again:
its job returns the recorded metrics. Delete that run in MLflow to train it anew.

Under torchrun or a multi-task SLURM job every rank trains its share of each batch; rank 0 alone
opens the MLflow run and writes checkpoints; the evaluation clips are sampled by every rank, a share
each, and scored by rank 0 (asva/evaluation/generation.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from asva import distributed
from asva.config.parse import parse_k
from asva.config.schema import ExperimentConfig
from asva.config.validate import check_files_and_device, paper_recipe_warning
from asva.data import sources
from asva.data.audio import fbank_frames
from asva.data.dataset import ClipSet, job_pool, kshot_indices, load_split
from asva.data.leakcheck import write_leak_removed
from asva.data.media import write_video
from asva.errors import ConfigError
from asva.evaluation.evaluate import evaluate
from asva.evaluation.protocol import evaluation_clips
from asva.files import write_text
from asva.tracking.runs import RunLogger, client, config_hash, experiment_id, flatten
from asva.tracking.store import BOOKKEEPING_METRICS, ROLE_JOB, ROLE_PRETRAIN, ROLE_TAG, tracking_uri
from asva.training.adapters import train_adapter_stage
from asva.training.components import build_model
from asva.training.loop import read_checkpoint_metadata
from asva.training.pretrain import pretrained_adapters

log = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run_id"
FINETUNE_CHECKPOINT = "finetune.pt"


def contract_params(cfg: ExperimentConfig) -> dict[str, str]:
    k = parse_k(cfg.k)
    return {
        "dataset": cfg.data.name,
        "fps": str(cfg.data.fps),
        "window_radius": str(float(cfg.window_radius)),
        "audio_layers": cfg.audio_layers,
        "k": "all" if k is None else str(k),
        "pretrain": str(cfg.pretrain).lower(),
        "curation": cfg.curation if cfg.pretrain else "none",
        "finetune": str(cfg.finetune and k != 0).lower(),
        "seed": str(cfg.seed),
    }


def check_before_compute(cfg: ExperimentConfig) -> tuple[Path, int | None]:
    """Every check that needs no compute beyond the values' own (run when `cfg` was built): files, device,
    K against the split. Returns (root, K)."""
    check_files_and_device(cfg)
    if (warning := paper_recipe_warning(cfg)) is not None:
        log.warning(warning)
    k = parse_k(cfg.k)
    root = sources.benchmark_root(cfg.data, Path(cfg.paths.cache_dir))
    if cfg.pretrain:
        sources.pool_root(cfg.data, root)
    counts = sources.train_videos_per_class(cfg.data, root)
    if k is not None and counts and k > min(counts.values()):
        smallest = min(counts, key=counts.get)
        raise ConfigError(f"k: {k} is larger than the {counts[smallest]} training videos of class {smallest!r}")
    return root, k


def is_whole_split(k: int | None, counts: dict[str, int]) -> bool:
    return k is None or (bool(counts) and k >= max(counts.values()))


def _log_samples(run: RunLogger, test: ClipSet, generated, cfg: ExperimentConfig) -> None:
    count = min(cfg.eval.num_sample_videos, len(generated))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(count):
            path = Path(tmp) / f"{test.video_ids[i]}.mp4"
            write_video(path, generated[i], cfg.data.fps, test.audio[i].numpy(), cfg.data.sample_rate)
            paths.append(path)
        run.log_files(paths, "samples")


def finished_run(study: str, digest: str):
    """The newest finished job run of `study` with this config hash, or None."""
    runs = client().search_runs(
        [experiment_id(study)],
        filter_string=f"params.config_hash = '{digest}' and tags.`{ROLE_TAG}` = '{ROLE_JOB}' and attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _earlier_run_id(run_dir: Path) -> str | None:
    """The run id an earlier attempt recorded: the marker file, else its training checkpoint."""
    marker = run_dir / RUN_ID_FILE
    if marker.exists():
        return marker.read_text().strip() or None
    return read_checkpoint_metadata(run_dir / FINETUNE_CHECKPOINT).get("mlflow_run_id")


def _run_info(run_id: str):
    """The run's info, or None when the tracking store has no such run."""
    try:
        return client().get_run(run_id).info
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise


def _open_run(cfg: ExperimentConfig, params: dict[str, str], run_dir: Path, parent: str | None) -> RunLogger:
    """The job's run: the unfinished run of an earlier attempt if there is one, else a new one."""
    earlier = _earlier_run_id(run_dir)
    if earlier is not None:
        info = _run_info(earlier)
        if info is not None and info.lifecycle_stage == "active" and info.status != "FINISHED":
            run = RunLogger(earlier)
            run.reopen()
            log.info("resuming MLflow run %s", run.run_id)
            return run
        if info is None:
            log.warning(
                "%s holds MLflow run %s, which the tracking store %s does not know (another MLFLOW_TRACKING_URI, "
                "or a deleted database): starting a new run, training from scratch",
                run_dir,
                earlier,
                tracking_uri(),
            )
        shutil.rmtree(run_dir)  # its run is unknown, deleted or finished: train anew, from scratch
    run_dir.mkdir(parents=True, exist_ok=True)
    name = " ".join(f"{k}={params[k]}" for k in ("window_radius", "audio_layers", "k", "pretrain", "seed"))
    run = RunLogger.create(cfg.study, ROLE_JOB, name, parent_run_id=parent)
    write_text(run_dir / RUN_ID_FILE, run.run_id)
    return run


def run_job(cfg: ExperimentConfig, parent_run_id: str | None = None) -> dict[str, float] | None:
    """Train and evaluate one configuration; returns its metrics (None when the job is redundant)."""
    root, k = check_before_compute(cfg)
    counts = sources.train_videos_per_class(cfg.data, root)
    if cfg.whole_split_once and is_whole_split(k, counts) and cfg.seed != 0 and cfg.finetune:
        log.warning(
            "k=%s is the whole training split: one run (seed 0) covers it (whole_split_once); seed %d skipped",
            cfg.k,
            cfg.seed,
        )
        return None
    if k == 0 and not cfg.pretrain:
        log.warning("k=0 without pretraining would evaluate untrained adapters; job skipped")
        return None
    if k == 0 and cfg.seed != 0:
        log.warning("k=0 evaluates the pretrained model once (seed 0); seed %d skipped", cfg.seed)
        return None
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)

    resolved = asdict(cfg)
    params = contract_params(cfg)
    digest = config_hash(resolved)
    world = distributed.init(cfg.train.distributed_timeout_minutes)
    done = finished_run(cfg.study, digest)
    if done is not None:
        log.info("config %s already finished in MLflow run %s: not trained again", digest, done.info.run_id)
        return {key: value for key, value in done.data.metrics.items() if key not in BOOKKEEPING_METRICS}
    run_dir = Path(cfg.paths.runs_dir) / cfg.study / digest
    if not world.is_main:
        _train_and_evaluate(cfg, root, k, None, run_dir)
        return None
    run = _open_run(cfg, params, run_dir, parent_run_id)
    try:
        run.log_params({**params, "config_hash": digest, **{f"cfg.{k}": v for k, v in flatten(resolved).items()}})
        run.log_text(flatten_yaml(resolved), "config.yaml")
        metrics = _train_and_evaluate(cfg, root, k, run, run_dir)
    except (KeyboardInterrupt, SystemExit):  # killed or preempted: the next attempt resumes this run
        run.finish("KILLED")
        raise
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()
    return metrics


def flatten_yaml(resolved: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in flatten(resolved).items()) + "\n"


def _train_and_evaluate(
    cfg: ExperimentConfig, root: Path, k: int | None, run: RunLogger | None, run_dir: Path
) -> dict[str, float] | None:
    """Build, train and evaluate. `run` is None on the ranks other than 0: they train their share only."""
    main = run is not None
    cache_dir = Path(cfg.paths.cache_dir)
    if not main:
        # Rank 0 generates or decodes the data and builds the cached frozen parts first.
        log.info(
            "rank %d waits for rank 0 to prepare the data and the frozen parts (up to %s minutes: "
            "train.distributed_timeout_minutes)",
            distributed.current().rank,
            cfg.train.distributed_timeout_minutes,
        )
        distributed.barrier()
    sources.ensure_generated(cfg.data, root)
    train = load_split(root, "train", cfg.data, cache_dir)
    test = load_split(root, "test", cfg.data, cache_dir)
    # Scored as the papers do: 3 clips per test video, evenly spaced over it (asva/evaluation/protocol.py).
    test_clips = evaluation_clips(root, "test", cfg.data, cache_dir)
    pool, leaks = job_pool(cfg.data, root, cache_dir)  # no evaluation video's footage reaches training
    if main and pool is not None:
        run.log_metrics({"pool_leaks_removed": len(leaks)})
        if leaks:
            with tempfile.TemporaryDirectory() as tmp:
                run.log_artifact(write_leak_removed(Path(tmp) / "leak_removed.csv", leaks))
    skipped = train.skipped + test.skipped + (pool.skipped if pool else [])
    unreadable: set[str] = set()  # clips training met and could not read (streamed videos)

    def log_skipped_files() -> None:
        everything = skipped + sorted(unreadable)
        run.log_metrics({"data_skipped_files": len(everything)})
        if everything:
            run.log_text("\n".join(everything) + "\n", "skipped_files.txt")

    if main:
        log_skipped_files()

    model = build_model(cfg, pool, cache_dir, fbank_frames(cfg.data.clip_seconds, cfg.data.sample_rate))
    if main:
        run.log_params({"trainable_parameters": str(sum(p.numel() for p in model.adapter_parameters()))})
        distributed.barrier()  # the data and the frozen parts are ready: the other ranks load them

    if cfg.pretrain:  # data-parallel over all ranks when not cached
        key, weights = pretrained_adapters(
            cfg, model, pool, cache_dir, _pretrain_logger(cfg, run) if main else None, failed=unreadable
        )
        model.load_adapter_state_dict(weights)
        if main:
            run.set_tags({"asva.pretrain_key": key})

    if cfg.finetune and k != 0:
        subset = train.subset(kshot_indices(train, k, cfg.seed))
        if main:
            run.log_text("\n".join(subset.video_ids) + "\n", "finetune_video_ids.txt")
        logged = {m.step for m in client().get_metric_history(run.run_id, "train_loss")} if main else set()

        def on_step(step: int, loss: float) -> None:
            if step not in logged:  # a resumed run logs each step once
                run.log_curve_point("train_loss", loss, step)

        losses = train_adapter_stage(
            model,
            subset,
            cfg.train.finetune,
            cfg.diffusion,
            cfg.seed,
            desc=f"stage 2: finetuning adapters on {len(subset)} videos",
            data=cfg.data,
            checkpoint_path=run_dir / FINETUNE_CHECKPOINT,
            on_step=on_step if main else None,
            on_checkpoint=(lambda step: run.flush()) if main else None,
            metadata={"mlflow_run_id": run.run_id} if main else None,
            data_parallel=distributed.current().size > 1,
            failed=unreadable,
            cache_dir=cache_dir,
        )
        if main:
            run.flush()
            run.log_metrics({"final_train_loss": sum(losses[-10:]) / len(losses[-10:])})

    if main and unreadable:
        log_skipped_files()
    evaluation = evaluate(model, test_clips, cfg, train)  # every rank samples its share, rank 0 scores
    if not main:
        return None
    run.log_metrics(evaluation.metrics)
    _log_samples(run, test_clips, evaluation.generated, cfg)
    log.info("metrics: %s", {k: round(v, 3) for k, v in evaluation.metrics.items()})
    return evaluation.metrics


def _pretrain_logger(cfg: ExperimentConfig, job: RunLogger):
    """Record a stage-1 training, when this job is the one that does it, as its own run."""

    def on_trained(key: str, losses: list[float], rejected: dict[str, str], kept: int) -> None:
        run = RunLogger.create(
            cfg.study, ROLE_PRETRAIN, f"pretrain {key}", tags={"asva.pretrain_key": key, "asva.trained_by": job.run_id}
        )
        run.log_params({**contract_params(cfg), "pretrain_key": key})
        for step, loss in enumerate(losses):
            run.log_curve_point("train_loss", loss, step)
        run.log_metrics({"curation_kept": kept, "curation_rejected": len(rejected)})
        if rejected:
            run.log_text("\n".join(f"{vid}\t{why}" for vid, why in rejected.items()) + "\n", "rejections.tsv")
        run.finish()

    return on_trained
