"""Registers the typed schema with Hydra, so composed configs are checked against it, and the
resolver by which an entry point finds its own presets."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from asva.config.commands import CurateConfig, EvaluateConfig, PrepareConfig, TrainSyncClassifierConfig
from asva.config.schema import DataConfig, ExperimentConfig, TrainConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "sweeps" / "conf"
CONF_RESOLVER = "asva.conf"


def conf_folder(name: str) -> str:
    """`${asva.conf:NAME}`: sweeps/conf/NAME as a Hydra search path entry, whatever the working folder.

    The `experiment` group of sweeps/conf/ holds the jobs' presets. An entry point with presets of its
    own keeps them in sweeps/conf/<entry point>/experiment/ and adds that folder to its
    `hydra.searchpath`: its `experiment=paper` is found there, and no job sees it."""
    return f"file://{CONFIG_DIR / name}"


def register() -> None:
    if not OmegaConf.has_resolver(CONF_RESOLVER):
        OmegaConf.register_new_resolver(CONF_RESOLVER, conf_folder)
    store = ConfigStore.instance()
    store.store(name="experiment_schema", node=ExperimentConfig)
    store.store(name="curate_schema", node=CurateConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="prepare_schema", node=PrepareConfig)
    store.store(name="train_sync_classifier_schema", node=TrainSyncClassifierConfig)
    store.store(group="data", name="schema", node=DataConfig)
    store.store(group="train", name="schema", node=TrainConfig)
