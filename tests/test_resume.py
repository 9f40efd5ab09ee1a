"""Resume after any kill: the training state round-trips through a checkpoint, and a job killed with
SIGKILL at ten random points finishes, when rerun, with the weights of an uninterrupted run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import REPO, TINY_OVERRIDES, job_env

from asva.errors import DataError
from asva.files import load_torch
from asva.training.loop import LoopSpec, train_loop

STEPS = 30


class Stop(Exception):
    pass


def tiny_training(path: Path, stop_at: int | None = None, steps: int = 8, batch_size: int = 3):
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 1)
    inputs, targets = torch.randn(10, 4), torch.randn(10, 1)

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(len(idx), 4, generator=gen) * 0.1  # per-step randomness
        dropout = torch.nn.functional.dropout(inputs[idx] + noise, 0.2)  # global torch RNG
        return torch.nn.functional.mse_loss(module(dropout), targets[idx])

    def on_step(step: int, value: float) -> None:
        if step == stop_at:
            raise Stop

    spec = LoopSpec(lr=0.05, batch_size=batch_size, steps=steps, checkpoint_every=1, warmup_steps=5)
    losses = train_loop(
        module,
        list(module.parameters()),
        loss,
        10,
        spec,
        seed=3,
        desc="tiny",
        checkpoint_path=path,
        on_step=on_step,
        metadata={"mlflow_run_id": "abc"},
    )
    return module, losses


def test_checkpoint_holds_the_whole_training_state(tmp_path):
    with pytest.raises(Stop):
        tiny_training(tmp_path / "state.pt", stop_at=4)
    saved = load_torch(tmp_path / "state.pt")
    assert saved["step"] == 4 and len(saved["losses"]) == 4
    assert saved["sampler"] == {"epoch": 1, "batch": 0, "num_examples": 10, "batch_size": 3}
    assert saved["scheduler"]["last_epoch"] == 4  # the warm-up is 4 steps in
    assert set(saved["rng"]) == {"torch", "numpy", "python"}
    assert saved["metadata"] == {"mlflow_run_id": "abc"}
    assert saved["optimizer"]["state"]  # Adam moments
    assert not list(tmp_path.glob("*.partial"))  # the temporary file was renamed over the checkpoint


def test_interrupted_loop_continues_exactly(tmp_path):
    straight, straight_losses = tiny_training(tmp_path / "straight.pt")
    for stop in (1, 3, 6):
        with pytest.raises(Stop):
            tiny_training(tmp_path / "resumed.pt", stop_at=stop)
    resumed, resumed_losses = tiny_training(tmp_path / "resumed.pt")
    assert resumed_losses == straight_losses
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    # The global RNGs continue where the uninterrupted run left them, for whatever runs next.
    torch.manual_seed(123)
    tiny_training(tmp_path / "straight-again.pt")
    after_straight = (torch.rand(1), np.random.rand(), random.random())
    tiny_training(tmp_path / "straight-again.pt")  # loads the final checkpoint, trains nothing
    assert (torch.rand(1), np.random.rand(), random.random()) == after_straight


def test_checkpoints_also_come_by_wall_time(tmp_path):
    module = torch.nn.Linear(2, 1)
    inputs = torch.randn(6, 2)

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return module(inputs[idx]).pow(2).mean()

    saved_at = {}
    for minutes in (None, 1e-9):  # never by time; overdue at every step (a step takes longer than 60 ns)
        saved_at[minutes] = []
        spec = LoopSpec(lr=0.01, batch_size=2, steps=5, checkpoint_every=1000, checkpoint_minutes=minutes)
        train_loop(
            module,
            list(module.parameters()),
            loss,
            6,
            spec,
            seed=0,
            desc="tiny",
            checkpoint_path=tmp_path / f"{minutes}.pt",
            on_checkpoint=saved_at[minutes].append,
        )
    assert saved_at == {None: [5], 1e-9: [1, 2, 3, 4, 5]}


def test_checkpoint_of_another_batch_size_is_refused(tmp_path):
    with pytest.raises(Stop):
        tiny_training(tmp_path / "state.pt", stop_at=2)
    with pytest.raises(DataError, match="batches of 3, this run has 10 in batches of 4"):
        tiny_training(tmp_path / "state.pt", batch_size=4)


@pytest.fixture(scope="module")
def job_cache(tmp_path_factory) -> Path:
    """One cache folder for every job of this module: the first job builds the benchmark and the frozen
    parts, the others find them (their runs, stores and checkpoints stay their own)."""
    return tmp_path_factory.mktemp("job_cache")


def job_command(workdir: Path, runs_dir: Path, cache_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "sweeps" / "window_radius.py"),
        *TINY_OVERRIDES,
        f"train.finetune.steps={STEPS}",
        "train.finetune.checkpoint_every=1",
        f"paths.cache_dir={cache_dir}",
        f"paths.runs_dir={runs_dir}",
        f"hydra.run.dir={workdir / 'outputs'}",
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, job_cache) -> tuple[dict, dict[str, float]]:
    """The job trained straight through, once for the tests that compare an interrupted one with it:
    its final finetuning checkpoint and its logged metrics."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    env = job_env(workdir)
    command = job_command(workdir, workdir / "runs", job_cache)
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [checkpoint] = (workdir / "runs").glob("*/*/finetune.pt")
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("window_radius")
    [run] = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("asva.role") == "job"]
    return load_torch(checkpoint), run.data.metrics


def checkpoint_step(run_root: Path) -> int:
    """The step of the job's finetuning checkpoint: -1 before any, 0 once the run exists."""
    checkpoints = list(run_root.glob("*/*/finetune.pt"))
    if checkpoints:
        try:
            return load_torch(checkpoints[0])["step"]
        except (EOFError, RuntimeError):  # replaced while being read
            return -1
    return 0 if list(run_root.glob("*/*/mlflow_run_id")) else -1


def test_sigkill_at_ten_random_steps_then_rerun_gives_identical_weights(tmp_path, job_cache, uninterrupted):
    env = job_env(tmp_path)
    rng = random.Random(20261123)
    targets = sorted(rng.sample(range(STEPS - 2), 10))
    killed_at = []
    command = job_command(tmp_path, tmp_path / "killed", job_cache)
    for target in targets:
        log = tmp_path / f"attempt-{target}.log"
        with open(log, "w") as output:
            process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while checkpoint_step(tmp_path / "killed") < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.15))  # land anywhere inside the step, a write included
        assert process.poll() is None, f"finished before the kill at step {target}: {log.read_text()[-2000:]}"
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(checkpoint_step(tmp_path / "killed"))
    final = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    assert len(set(killed_at)) >= 8, killed_at  # the kills landed at different steps

    straight, straight_metrics = uninterrupted
    [resumed] = list((tmp_path / "killed").glob("*/*/finetune.pt"))
    resumed = load_torch(resumed)
    assert straight["step"] == resumed["step"] == STEPS
    assert straight["weights"].keys() == resumed["weights"].keys()
    for name, tensor in straight["weights"].items():
        assert torch.equal(tensor, resumed["weights"][name]), name
    assert resumed["losses"] == straight["losses"]

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("window_radius")
    runs = client.search_runs([experiment.experiment_id], filter_string="params.`cfg.paths.runs_dir` LIKE '%killed'")
    assert len(runs) == 1  # every attempt continued the same MLflow run
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert resumed["metadata"]["mlflow_run_id"] == run.info.run_id
    history = sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(STEPS))  # each step logged once, none lost
    assert [m.value for m in history] == straight["losses"]
    assert run.data.metrics["event_sync"] == straight_metrics["event_sync"]
    assert run.data.metrics["fd_pixel_synth"] == straight_metrics["fd_pixel_synth"]


def test_a_run_folder_whose_run_the_store_does_not_know_starts_a_new_run(tmp_path, job_cache):
    """The user switched MLFLOW_TRACKING_URI (or deleted the database) between two attempts."""
    runs_dir = tmp_path / "runs"
    command = [*job_command(tmp_path, runs_dir, job_cache), "train.finetune.steps=2"]
    first = subprocess.run(
        command, cwd=tmp_path, env=job_env(tmp_path / "old_store"), capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr[-3000:]
    [marker] = runs_dir.glob("*/*/mlflow_run_id")
    forgotten = marker.read_text().strip()

    second = subprocess.run(
        command, cwd=tmp_path, env=job_env(tmp_path / "new_store"), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert f"holds MLflow run {forgotten}, which the tracking store" in second.stdout
    assert "starting a new run, training from scratch" in second.stdout
    client = mlflow.MlflowClient(tracking_uri=job_env(tmp_path / "new_store")["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("window_radius")
    [run] = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("asva.role") == "job"]
    assert run.info.status == "FINISHED" and run.info.run_id != forgotten
    assert marker.read_text().strip() == run.info.run_id
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [0, 1]  # trained anew: the whole curve is in the new run


def test_a_stop_signal_between_step_checkpoints_saves_that_step_and_the_rerun_ends_identical(
    tmp_path, job_cache, uninterrupted
):
    """SIGUSR2 (SLURM's preemption warning) mid-step, with no step checkpoint due: the job saves at
    the end of that step, then ends; the rerun resumes there and ends as an uninterrupted run."""
    signalled_step = 12
    command = [*job_command(tmp_path, tmp_path / "signalled", job_cache), "train.finetune.checkpoint_every=1000"]
    env = job_env(tmp_path)
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / f"hold-{signalled_step}").touch()
    gated = {**env, "ASVA_TEST_GATE_DIR": str(gate), "PYTHONPATH": str(REPO / "tests" / "job_gate")}
    log = tmp_path / "signalled.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=gated, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (gate / f"held-{signalled_step}").exists(), process, log)
        process.send_signal(signal.SIGUSR2)
        wait_for(lambda: "SIGUSR2 received" in log.read_text(), process, log)
        (gate / f"release-{signalled_step}").touch()
        process.wait(timeout=300)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGUSR2  # the signal's default action, after the save
    [checkpoint] = (tmp_path / "signalled").glob("*/*/finetune.pt")
    assert load_torch(checkpoint)["step"] == signalled_step + 1

    final = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "resuming MLflow run" in final.stdout
    straight, _ = uninterrupted
    resumed = load_torch(checkpoint)
    assert resumed["step"] == STEPS and resumed["losses"] == straight["losses"]
    for name, tensor in straight["weights"].items():
        assert torch.equal(tensor, resumed["weights"][name]), name


def wait_for(condition, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
