"""Data-parallel training under torchrun (gloo on CPU): 2 processes with batch B end with the adapter
weights of 1 process with batch 2B, and only rank 0 writes to MLflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from asva.distributed import World, _first_host, world_from_env
from asva.training.checkpoint import load_checkpoint
from conftest import REPO, TINY_OVERRIDES, job_env

STEPS = 6


def job_args(workdir: Path, batch_size: int, name: str) -> list[str]:
    return [
        str(REPO / "sweeps" / "window_radius.py"), *TINY_OVERRIDES, f"train.finetune.steps={STEPS}",
        f"train.finetune.batch_size={batch_size}", "train.num_threads=1", "train.finetune.checkpoint_every=2",
        f"paths.cache_dir={workdir / 'cache'}", f"paths.runs_dir={workdir / name}", f"hydra.run.dir={workdir / 'outputs' / name}",
    ]


def test_two_ranks_train_like_one_process_with_the_doubled_batch(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = job_env(tmp_path)
    single = subprocess.run([sys.executable, *job_args(tmp_path, 8, "single")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    ranks = subprocess.run([torchrun, "--standalone", "--nproc-per-node=2", *job_args(tmp_path, 4, "ddp")], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=600)
    assert ranks.returncode == 0, ranks.stderr[-3000:]

    [one] = (tmp_path / "single").glob("*/*/finetune.pt")
    [two] = (tmp_path / "ddp").glob("*/*/finetune.pt")  # rank 0 alone writes checkpoints
    one, two = load_checkpoint(one), load_checkpoint(two)
    assert one["sampler"]["batch_size"] == two["sampler"]["batch_size"] == 8
    assert one["weights"].keys() == two["weights"].keys()
    for name, tensor in one["weights"].items():
        torch.testing.assert_close(two["weights"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("window_radius")
    jobs = client.search_runs([experiment.experiment_id], filter_string="params.`cfg.paths.runs_dir` LIKE '%ddp'")
    assert len(jobs) == 1 and jobs[0].info.status == "FINISHED"  # one run, written by rank 0
    history = client.get_metric_history(jobs[0].info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(STEPS))


def test_world_comes_from_torchrun_or_a_slurm_step():
    assert world_from_env({}) == World(0, 1, 0)
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0"}
    assert world_from_env(slurm) == World(5, 8, 1)
    # The batch script itself (no step) is not a rank.
    assert world_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) == World(0, 1, 0)
    assert _first_host("gpu[03-05,9],cpu1") == "gpu03"
    assert _first_host("node7") == "node7"


@pytest.mark.parametrize("batch, size, expected", [(8, 2, [4, 4]), (7, 2, [4, 3]), (5, 4, [2, 1, 1, 1])])
def test_ranks_split_a_batch_and_their_weighted_means_average_to_the_batch_mean(monkeypatch, batch, size, expected):
    import asva.distributed as distributed

    values = torch.arange(batch, dtype=torch.float64)
    rows, weighted = [], []
    for rank in range(size):
        monkeypatch.setattr(distributed, "current", lambda rank=rank: World(rank, size, 0))
        share = distributed.local_rows(batch)
        rows.append(list(range(batch))[share])
        weighted.append(values[share].mean() * distributed.share_weight(batch))
    assert [len(r) for r in rows] == expected and sum(rows, []) == list(range(batch))
    assert float(sum(weighted) / size) == pytest.approx(float(values.mean()))
