"""What the sweeps ask SLURM for through the cluster launcher (sweeps/conf/hydra/launcher/slurm_a100.yaml).

Each sweep entry point runs as a user runs it, with a stand-in `sbatch` first on the PATH that keeps
the batch script submitit writes and refuses it: the test reads the resources each array task asks
for, and the overrides of every job submitit pickled for the array, without a cluster.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, job_env
from hydra.core.override_parser.overrides_parser import OverridesParser
from submitit.core.utils import DelayedSubmission

STAND_IN_SBATCH = """#!/bin/sh
cp "$1" "$SBATCH_SCRIPT_COPY"
echo "sbatch: error: refused by the test" >&2
exit 1
"""


def submit(tmp_path: Path, sweep: str, *overrides: str, **environment: str) -> tuple[dict[str, str], list[dict]]:
    """The sbatch flags of the array `sweeps/<sweep>.py` submits, and each job's overrides as the
    job reads them (key -> value, parsed by Hydra's override grammar)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(STAND_IN_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    script = tmp_path / "sbatch.sh"
    env = job_env(tmp_path) | environment | {"SBATCH_SCRIPT_COPY": str(script)}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    sweep_dir = tmp_path / "multirun"
    result = subprocess.run(
        [sys.executable, str(REPO / "sweeps" / f"{sweep}.py"), *overrides, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "refused by the test" in result.stderr, result.stderr[-3000:]  # it got as far as sbatch
    flags = dict(
        line.removeprefix("#SBATCH --").split("=", 1)
        for line in script.read_text().splitlines()
        if line.startswith("#SBATCH --")
    )
    parser = OverridesParser.create()
    jobs = [
        {override.key_or_group: override.value() for override in parser.parse_overrides(submitted.args[0])}
        for submitted in map(DelayedSubmission.load, (sweep_dir / ".submitit").glob("*.pkl"))
    ]
    return flags, jobs


def test_kshot_submits_its_whole_table_without_minus_m_one_task_per_gpu(tmp_path):
    flags, jobs = submit(
        tmp_path, "kshot", "hydra/launcher=slurm_a100", SLURM_PARTITION="gpu-a100", SLURM_ACCOUNT="vision-lab"
    )
    # One node of 4 A100s, a process (task) per GPU, partition and account from the environment.
    assert (flags["nodes"], flags["gpus-per-node"], flags["ntasks-per-node"]) == ("1", "4", "4")
    assert (flags["constraint"], flags["partition"], flags["account"]) == ("a100", "gpu-a100", "vision-lab")
    # Warned before a preemption or the time limit, so that the job saves and is requeued.
    assert flags["signal"] == "USR2@120" and flags["time"] == "1440"
    # Table 3: each K with and without pretraining, over 3 seeds, as one array of 24 tasks.
    assert flags["array"] == "0-23%24" and flags["job-name"] == "kshot"
    table = {(job["k"], job["pretrain"], job["seed"]) for job in jobs}
    assert len(jobs) == len(table) == 24
    assert {k for k, _, _ in table} == {1, 5, 10, 90} and {seed for _, _, seed in table} == {0, 1, 2}


def test_the_encoder_layer_grid_submits_every_feature_set_for_three_seeds(tmp_path):
    flags, jobs = submit(tmp_path, "encoder_layers", "-m", "hydra/launcher=slurm_a100")
    assert flags["array"] == "0-11%12" and flags["gpus-per-node"] == "4"
    assert sorted((job["audio_layers"], job["seed"]) for job in jobs) == sorted(
        (layers, seed) for layers in ("a:11", "a:7-9-11", "a:3-7-11", "a:3-7-11+b:3-7-11") for seed in (0, 1, 2)
    )


def test_the_a100_launcher_fits_a_cpu_partition_by_overrides(tmp_path):
    cpu = [
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.constraint=null",
        "hydra.launcher.mem_gb=null",
        "hydra.launcher.partition=cpu",
    ]
    flags, jobs = submit(tmp_path, "window_radius", "-m", "hydra/launcher=slurm_a100", *cpu)
    assert not {"gpus-per-node", "constraint", "mem"} & set(flags)
    assert (flags["ntasks-per-node"], flags["partition"]) == ("1", "cpu")
    # Figure 4b: every radius over the sweep's 3 default seeds.
    assert flags["array"] == "0-14%15"
    assert sorted((job["window_radius"], job["seed"]) for job in jobs) == sorted(
        (radius, seed) for radius in (0.5, 1.0, 1.5, 2.0, 3.0) for seed in (0, 1, 2)
    )
