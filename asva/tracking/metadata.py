"""What a run records about where it ran: source revision, software, hardware, scheduler, search trial.

A number is only worth comparing with another when both came from known code on known software:
every run gets these tags when it is created and again when a later attempt reopens it (a requeued
SLURM job, a resumed job on another node), plus the full list as `environment.json`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from asva.tracking.store import PROJECT_ROOT

GIT_COMMIT_TAG = "asva.git_commit"
GIT_DIRTY_TAG = "asva.git_dirty"
MLFLOW_GIT_COMMIT_TAG = "mlflow.source.git.commit"  # what MLflow's UI shows as the source version
GPU_TAG = "asva.gpu"
SLURM_JOB_TAG = "asva.slurm_job_id"
SLURM_ARRAY_TAG = "asva.slurm_array_task"
SLURM_NODE_TAG = "asva.slurm_node"
PACKAGE_TAG_PREFIX = "asva.pkg."
OPTUNA_STUDY_TAG = "asva.optuna_study"
OPTUNA_TRIAL_TAG = "asva.optuna_trial"

# Set by the Optuna sweeper (hydra_plugins/asva_optuna_sweeper) in the environment of each trial's job.
OPTUNA_STUDY_ENV = "ASVA_OPTUNA_STUDY"
OPTUNA_TRIAL_ENV = "ASVA_OPTUNA_TRIAL_NUMBER"

ENVIRONMENT_ARTIFACT = "environment.json"

# Distributions whose versions change results or the run records.
PACKAGES = (
    "torch",
    "torchvision",
    "torchaudio",
    "diffusers",
    "numpy",
    "scipy",
    "av",
    "mlflow",
    "hydra-core",
    "omegaconf",
    "submitit",
    "hydra-submitit-launcher",
    "optuna",
    "sqlalchemy",
    "asva-ablate",
)


@lru_cache(maxsize=1)
def git_state(root: Path = PROJECT_ROOT) -> tuple[str, str]:
    """(commit, dirty) of the source tree: dirty is "true" when tracked or unignored files differ.

    ("unknown", "unknown") outside a git checkout (an installed wheel, a copied folder).
    """
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    return commit, str(bool(status.strip())).lower()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def gpu_description() -> str:
    """ "cpu", or the visible GPUs' names with their count, e.g. "NVIDIA A100-SXM4-80GB x4"."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return ", ".join(f"{name} x{names.count(name)}" for name in dict.fromkeys(names))


def slurm_tags() -> dict[str, str]:
    """The SLURM job this process belongs to, when it runs under SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return {}
    tags = {SLURM_JOB_TAG: job}
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        tags[SLURM_ARRAY_TAG] = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    if os.environ.get("SLURMD_NODENAME"):
        tags[SLURM_NODE_TAG] = os.environ["SLURMD_NODENAME"]
    return tags


def optuna_tags() -> dict[str, str]:
    """The search trial this job is, when the Optuna sweeper launched it."""
    trial = os.environ.get(OPTUNA_TRIAL_ENV)
    if trial is None:
        return {}
    return {OPTUNA_TRIAL_TAG: trial, OPTUNA_STUDY_TAG: os.environ.get(OPTUNA_STUDY_ENV, "")}


def environment() -> dict:
    """Everything `environment.json` holds."""
    commit, dirty = git_state()
    import torch

    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "packages": package_versions(),
        "gpu": gpu_description(),
        "cuda": torch.version.cuda or "none",
        "slurm": {key: value for key, value in os.environ.items() if key.startswith("SLURM_")},
    }


def run_tags(env: dict) -> dict[str, str]:
    """The tags of a run, from `environment()` and this process's scheduler and search context."""
    tags = {
        GIT_COMMIT_TAG: env["git_commit"],
        GIT_DIRTY_TAG: env["git_dirty"],
        GPU_TAG: env["gpu"],
        **{f"{PACKAGE_TAG_PREFIX}{name}": version for name, version in env["packages"].items()},
        **slurm_tags(),
        **optuna_tags(),
    }
    if env["git_commit"] != "unknown":
        tags[MLFLOW_GIT_COMMIT_TAG] = env["git_commit"]
    return tags
