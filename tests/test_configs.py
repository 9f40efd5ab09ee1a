"""Every shipped config composes and builds: each entry point's config (sweeps/conf/*.yaml), each option of
each config group, each experiment preset, composed in-process as the entry points compose them, turned into
its typed dataclass (whose `__post_init__` checks every value) and checked as the job checks it before any
compute. A broken preset fails here; tests/test_validate.py shows each impossible value failing."""

from __future__ import annotations

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf

from asva.config.build import build_config
from asva.config.commands import CurateConfig
from asva.config.schema import ExperimentConfig
from asva.config.store import register
from asva.config.validate import check_files_and_device

CONF = REPO / "sweeps" / "conf"
# Where a real benchmark's (never read) folder is needed: every preset and option naming one leaves it `???`.
REAL_DATA_ROOT = "data.root=/benchmark"
# What an entry point needs on its command line to be a whole config (evaluate: a run or a checkpoint).
REQUIRED = {"evaluate": ["run_id=any"]}


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def entry_configs() -> list[str]:
    return sorted(path.stem for path in CONF.glob("*.yaml"))


def own_presets() -> list[tuple[str, str]]:
    """(entry point config, preset) of the presets an entry point keeps to itself, in
    sweeps/conf/<its config>/experiment/ (on its hydra.searchpath only)."""
    return [(config, option) for config in entry_configs() for option in options(f"{config}/experiment")]


def build(config: str, overrides: list[str]) -> object:
    """The config as its entry point builds and checks it before any compute."""
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose(config_name=config, overrides=[*REQUIRED.get(config, []), *overrides])
    built = build_config(composed)
    check_files_and_device(built)
    return built


def test_every_shipped_config_is_found():
    # The discovery below must see the configs it claims to cover (an emptied glob would test nothing).
    assert {"base", "window_radius", "kshot", "curate", "evaluate", "prepare"} <= set(entry_configs())
    assert {"paper_6fps", "paper_12fps"} <= set(options("experiment"))
    assert {("curate", "paper"), ("train_sync_classifier", "paper")} <= set(own_presets())
    assert {"synthetic", "avsync15"} <= set(options("data")) and {"embedded", "paper"} <= set(options("train"))
    for script in (REPO / "sweeps").glob("*.py"):
        name = next(
            line.split('config_name="')[1].split('"')[0]
            for line in script.read_text().splitlines()
            if "config_name=" in line
        )
        assert name in entry_configs(), f"{script.name}: config {name} is not in sweeps/conf/"


@pytest.mark.parametrize("config", entry_configs())
def test_each_entry_point_config_builds(config):
    built = build(config, [])
    assert getattr(built, "study", None)  # every job names its study (MLflow experiment)


@pytest.mark.parametrize(
    ("group", "option"),
    [
        (group, option)
        for group in ("data", "train", "model", "tracking", "curation_filters", "experiment")
        for option in options(group)
    ],
)
def test_each_group_option_builds_on_the_shared_base(group, option):
    built = build("base", [f"{group}={option}", REAL_DATA_ROOT])
    assert isinstance(built, ExperimentConfig)


@pytest.mark.parametrize("option", options("curation_filters"))
def test_each_curation_preset_builds_in_the_curation_job(option):
    built = build("curate", [f"curation_filters@filters={option}"])
    assert isinstance(built, CurateConfig)


@pytest.mark.parametrize("option", options("data"))
def test_each_dataset_builds_in_the_classifier_training(option):
    built = build("train_sync_classifier", [f"data={option}", REAL_DATA_ROOT])
    assert built.data.name == option


@pytest.mark.parametrize(("config", "option"), own_presets())
def test_each_entry_points_own_preset_builds(config, option):
    # Both name a real benchmark; curate's also the folder of VGGSound's clips (never read here).
    built = build(config, [f"experiment={option}", REAL_DATA_ROOT, *(["input=/videos"] if config == "curate" else [])])
    assert built.study == build(config, []).study


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_each_launcher_composes_and_names_an_importable_launcher(monkeypatch, launcher):
    monkeypatch.setenv("SLURM_PARTITION", "any")
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose(config_name="base", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    settings = OmegaConf.to_container(composed.hydra.launcher, resolve=True)
    assert get_class(settings["_target_"]).__name__.endswith("Launcher")


def test_the_schema_defaults_are_the_embedded_default_the_sweeps_run():
    # Defaults live in the schema only: a study's config adds its study name and sweep, nothing else.
    composed = build("window_radius", [])
    assert isinstance(composed, ExperimentConfig)
    composed.study = ExperimentConfig().study
    assert composed == ExperimentConfig()
