"""Sweeps on a real SLURM (a single-node cluster started once per session, tests/services/slurm.py).

The jobs go through `hydra/launcher=slurm_a100`, the config a user runs on an A100 cluster, with
overrides that fit this machine: the test partition, no GPUs, one CPU and the default memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from conftest import REPO, TINY_OVERRIDES, job_env, require_executables
from services.slurm import EXECUTABLES, SlurmCluster, slurm_cluster

from asva.files import load_torch

pytestmark = pytest.mark.slurm

STEPS = 40
# The steps during which the job is requeued, then preempted; and one the third attempt passes.
INTERRUPTIONS = (10, 25)
RESUMED_CHECK = 30


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    require_executables(*EXECUTABLES)
    if os.geteuid() != 0:  # slurmd must be root to start jobs
        message = "the SLURM test cluster runs its daemons as root"
        pytest.fail(message) if os.environ.get("ASVA_REQUIRE_SERVICES") == "1" else pytest.skip(message)
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        print(f"SLURM test cluster started in {cluster.started_in_s:.1f} s")
        yield cluster


def local_launcher_overrides(cluster: SlurmCluster) -> list[str]:
    return [
        "hydra/launcher=slurm_a100",
        f"hydra.launcher.partition={cluster.partition}",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=null",
        "hydra.launcher.constraint=null",
        "hydra.launcher.account=null",
        "hydra.launcher.timeout_min=30",
    ]


def sweep_command(workdir: Path, cluster: SlurmCluster, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        str(REPO / "sweeps" / "window_radius.py"),
        "-m",
        *local_launcher_overrides(cluster),
        *TINY_OVERRIDES,
        f"paths.cache_dir={workdir / 'cache'}",
        f"paths.runs_dir={workdir / 'runs'}",
        f"hydra.sweep.dir={workdir / 'multirun'}",
        *extra,
    ]


def runs_by_role(workdir: Path, role: str):
    client = mlflow.MlflowClient(tracking_uri=job_env(workdir)["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("window_radius")
    return [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("asva.role") == role]


def test_two_job_sweep_runs_on_slurm_nested_under_one_parent(tmp_path, slurm):
    command = sweep_command(tmp_path, slurm, ["window_radius=0.5,2.0", "seed=0"])
    result = subprocess.run(
        command, cwd=tmp_path, env=slurm.env(job_env(tmp_path)), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [parent] = runs_by_role(tmp_path, "sweep")
    jobs = runs_by_role(tmp_path, "job")
    assert sorted(j.data.params["window_radius"] for j in jobs) == ["0.5", "2.0"]
    assert all(j.info.status == "FINISHED" and j.data.tags["mlflow.parentRunId"] == parent.info.run_id for j in jobs)
    assert all("event_sync" in j.data.metrics for j in jobs)
    # The jobs ran as SLURM jobs, on the test partition, and SLURM recorded them as completed.
    submitted = sorted({p.name.split("_")[0] for p in (tmp_path / "multirun" / ".submitit").glob("[0-9]*")})
    assert len(submitted) == 1  # one job array
    expected = [f"{submitted[0]}_0|local|COMPLETED", f"{submitted[0]}_1|local|COMPLETED"]
    accounted(slurm, lambda states: sorted(states) == expected, "-o", "JobID,Partition,State", "-j", submitted[0])


def accounted(cluster: SlurmCluster, settled, *query: str, timeout: float = 120) -> None:
    """Wait until `sacct -X <query>` satisfies `settled`. submitit reads a task's result file, which is
    written before slurmd reports the task's end to the accounting database: the record lags."""
    deadline = time.monotonic() + timeout
    while not settled(states := cluster.command("sacct", "-n", "-P", "-X", *query).split()):
        assert time.monotonic() < deadline, states
        time.sleep(0.5)


def checkpoint_step(runs_dir: Path) -> int:
    checkpoints = list(runs_dir.glob("*/*/finetune.pt"))
    if not checkpoints:
        return -1
    try:
        return load_torch(checkpoints[0])["step"]
    except (EOFError, RuntimeError):
        return -1


def running_job(cluster: SlurmCluster) -> str | None:
    lines = cluster.command("squeue", "-h", "-t", "RUNNING", "-o", "%i").split()
    return lines[0] if lines else None


def release_held_jobs(cluster: SlurmCluster) -> None:
    """SLURM holds a requeued job for two minutes before it may start again; release it now."""
    for line in cluster.command("squeue", "-h", "-t", "PENDING", "-o", "%i %r").splitlines():
        job, reason = line.split()
        if reason == "BeginTime":
            cluster.command("scontrol", "update", f"JobId={job}", "StartTime=now")


def resumes(tmp_path: Path, job: str) -> int:
    """How many attempts of `job` have reopened its MLflow run, from submitit's logs."""
    logs = (tmp_path / "multirun" / ".submitit").glob(f"{job}/*_log.*")
    return sum(log.read_text(errors="replace").count("resuming MLflow run") for log in logs)


def wait_until(condition, what: str, sweep: subprocess.Popen, cluster: SlurmCluster, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if sweep.poll() is not None:
            return
        release_held_jobs(cluster)
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def job_log(tmp_path: Path, job: str) -> str:
    return "".join(
        log.read_text(errors="replace") for log in (tmp_path / "multirun" / ".submitit").glob(f"{job}/*_log.*")
    )


def test_requeued_and_preempted_job_saves_at_the_signal_and_continues_its_run_and_weights(tmp_path, slurm):
    # Step checkpoints never come (every 1000 steps): only the stop signals save.
    job_args = [f"train.finetune.steps={STEPS}", "train.finetune.checkpoint_every=1000"]
    command = sweep_command(tmp_path, slurm, ["window_radius=1.0", "seed=0", *job_args])
    # The job waits before the steps the test acts at (tests/job_gate), however fast it trains.
    gate = tmp_path / "gate"
    gate.mkdir()
    for step in (*INTERRUPTIONS, INTERRUPTIONS[0] + 1, RESUMED_CHECK):
        (gate / f"hold-{step}").touch()
    env = slurm.env(job_env(tmp_path))
    env["ASVA_TEST_GATE_DIR"] = str(gate)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests" / "job_gate"), env.get("PYTHONPATH")]))
    output = open(tmp_path / "sweep.log", "w")
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    runs_dir = tmp_path / "runs"
    requeued, preempted = INTERRUPTIONS
    seen = {}
    try:
        # 1. The scheduler requeues the running job (as `scontrol requeue` or a node failure does):
        # SIGTERM, then SIGKILL. The job saves at the end of the step the SIGTERM arrived in.
        wait_until(lambda: (gate / f"held-{requeued}").exists(), f"training to reach step {requeued}", sweep, slurm)
        job = running_job(slurm)
        assert job is not None, (tmp_path / "sweep.log").read_text()[-3000:]
        seen["before requeue"] = checkpoint_step(runs_dir)
        slurm.command("scontrol", "requeue", job)
        wait_until(lambda: "SIGTERM received" in job_log(tmp_path, job), "the SIGTERM", sweep, slurm)
        (gate / f"release-{requeued}").touch()  # it stops at the next gate until SIGKILL
        # 2. Preemption: SLURM signals USR2; the job saves, then submitit requeues it.
        wait_until(
            lambda: (gate / f"held-{preempted}").exists(), f"the requeued job to reach step {preempted}", sweep, slurm
        )
        seen["before preemption"] = checkpoint_step(runs_dir)
        slurm.command("scancel", "--signal=USR2", job)
        wait_until(lambda: "SIGUSR2 received" in job_log(tmp_path, job), "the SIGUSR2", sweep, slurm)
        (gate / f"release-{preempted}").touch()
        # 3. The third attempt: nothing saved since it started, so the checkpoint is still the signal's.
        wait_until(
            lambda: (gate / f"held-{RESUMED_CHECK}").exists(),
            f"the third attempt to reach step {RESUMED_CHECK}",
            sweep,
            slurm,
        )
        seen["third attempt"] = checkpoint_step(runs_dir)
        (gate / f"release-{RESUMED_CHECK}").touch()
        wait_until(lambda: sweep.poll() is not None, "the sweep to finish", sweep, slurm)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        output.close()
    assert sweep.returncode == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    # No checkpoint before the first signal; then exactly the steps the signals arrived in.
    assert seen == {"before requeue": -1, "before preemption": requeued + 1, "third attempt": preempted + 1}

    accounted(
        slurm,
        lambda states: states.count("REQUEUED") == 2 and states[-1] == "COMPLETED",
        "-D",
        "-o",
        "State",
        "-j",
        job,
    )
    assert "this job is preempted" in job_log(tmp_path, job)  # submitit's USR2 handler ran
    assert resumes(tmp_path, job) == 2

    [parent] = runs_by_role(tmp_path, "sweep")
    [run] = runs_by_role(tmp_path, "job")  # one run across the three attempts
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    client = mlflow.MlflowClient(tracking_uri=job_env(tmp_path)["MLFLOW_TRACKING_URI"])
    history = sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(STEPS))

    # The same job, uninterrupted and outside SLURM, ends with bit-identical adapter weights.
    reference = subprocess.run(
        [
            sys.executable,
            str(REPO / "sweeps" / "window_radius.py"),
            "window_radius=1.0",
            *TINY_OVERRIDES,
            *job_args,
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.runs_dir={tmp_path / 'reference'}",
            f"hydra.run.dir={tmp_path / 'outputs'}",
        ],
        cwd=tmp_path,
        env=job_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    [straight] = (tmp_path / "reference").glob("*/*/finetune.pt")
    [resumed] = runs_dir.glob("*/*/finetune.pt")
    straight, resumed = load_torch(straight), load_torch(resumed)
    for name, tensor in straight["weights"].items():
        assert torch.equal(tensor, resumed["weights"][name]), name
    assert [m.value for m in history] == straight["losses"]
