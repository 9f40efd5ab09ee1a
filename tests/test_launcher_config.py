"""The cluster launcher config composes with every sweep and holds the cluster defaults."""

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from asva.config.store import register


@pytest.mark.parametrize("sweep", ["window_radius", "kshot", "encoder_layers"])
def test_slurm_a100_launcher(monkeypatch, sweep):
    monkeypatch.setenv("SLURM_PARTITION", "gpu-a100")
    monkeypatch.setenv("SLURM_ACCOUNT", "vision-lab")
    register()
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        cfg = compose(config_name=sweep, overrides=["hydra/launcher=slurm_a100"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 4, 4)  # a process per GPU
    assert launcher.constraint == "a100"
    assert launcher.max_num_timeout > 0  # 0 would never requeue a preempted job
    assert OmegaConf.select(cfg, "hydra.launcher.partition") == "gpu-a100"
    assert OmegaConf.select(cfg, "hydra.launcher.account") == "vision-lab"
    assert cfg.study == sweep


def test_kshot_is_multirun_by_default_and_others_are_not():
    register()
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        kshot = compose(config_name="kshot", return_hydra_config=True)
        radius = compose(config_name="window_radius", return_hydra_config=True)
    assert str(kshot.hydra.mode) == "RunMode.MULTIRUN"
    assert kshot.hydra.sweeper.params.k == "1,5,10,90"
    assert radius.hydra.sweeper.params.window_radius == "0.5,1.0,1.5,2.0,3.0"
    assert radius.hydra.mode is None


def test_slurm_a100_fits_a_cpu_partition_by_overrides():
    register()
    overrides = [
        "hydra/launcher=slurm_a100",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.constraint=null",
        "hydra.launcher.mem_gb=null",
        "hydra.launcher.partition=cpu",
    ]
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        cfg = compose(config_name="window_radius", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.gpus_per_node is None and launcher.constraint is None and launcher.mem_gb is None
    assert launcher.tasks_per_node == 1 and launcher.partition == "cpu"
