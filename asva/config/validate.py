"""What a built config cannot check by itself: the machine it runs on. The values are checked when the
config is built (each dataclass's `__post_init__`, asva/config/schema.py); this adds the files it names
and the device it asks for, and the warning for a paper-model job trained by the embedded recipe."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path

import torch

from asva.config.schema import CurationConfig, DataConfig, EvalConfig, ExperimentConfig, TrainConfig
from asva.errors import ConfigError


def _groups(config: object, key: str = "") -> Iterator[tuple[str, object]]:
    """Every dataclass in the config with its dotted key ("" for the config itself)."""
    yield key, config
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            yield from _groups(value, f"{key}.{item.name}" if key else item.name)


def _missing(key: str, path: str | None, folder_too: bool = False) -> None:
    found = Path(path or "").expanduser()
    if path and not (found.exists() if folder_too else found.is_file()):
        raise ConfigError(f"{key}: {path} does not exist")


def check_files_and_device(cfg: object) -> None:
    """Raise ConfigError naming the first file the config names that is not here, or a CUDA device that
    is not. Every entry point that computes calls it on its config, right after building it (before any
    compute). These checks are not in `__post_init__` because a config is also built where they need
    not hold: in the process that launches a sweep (a login node without a GPU, before SLURM places the
    jobs), by `python -m asva.params` (which counts parameters on the meta device), by `--cfg job` and
    by the tests that compose every shipped config."""
    for key, group in _groups(cfg):
        if isinstance(group, CurationConfig):
            _missing(f"{key}.craft_weights", group.craft_weights)
            _missing(f"{key}.raft_weights", group.raft_weights)
        elif isinstance(group, DataConfig):
            _missing(f"{key}.pool_manifest", group.pool_manifest)
        elif isinstance(group, EvalConfig) and group.paper_metrics:  # the networks scoring the papers' metrics
            networks = group.networks
            for name in ("i3d_checkpoint", "imagebind_checkpoint", "clip_checkpoint", "fid_inception_checkpoint"):
                _missing(f"{key}.networks.{name}", getattr(networks, name))
            # The papers' classifier is a folder (the release's modules) or a file.
            _missing(f"{key}.networks.sync_classifier.checkpoint", networks.sync_classifier.checkpoint, folder_too=True)
        elif isinstance(group, TrainConfig) and group.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{key}.device: cuda, but torch finds no CUDA device here (use auto or cpu)")


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
