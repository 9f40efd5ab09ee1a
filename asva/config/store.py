"""Registers the typed schema with Hydra, so composed configs are checked against it."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from asva.config.schema import (
    CurateConfig,
    DataConfig,
    EvaluateConfig,
    ExperimentConfig,
    PrepareConfig,
    TrainConfig,
    TrainSyncClassifierConfig,
)


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="experiment_schema", node=ExperimentConfig)
    store.store(name="curate_schema", node=CurateConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="prepare_schema", node=PrepareConfig)
    store.store(name="train_sync_classifier_schema", node=TrainSyncClassifierConfig)
    store.store(group="data", name="schema", node=DataConfig)
    store.store(group="train", name="schema", node=TrainConfig)
