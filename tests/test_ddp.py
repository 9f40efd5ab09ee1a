"""Data-parallel training under torchrun (gloo on CPU): `batch_size` is the global batch, so 2 processes
end both stages with the adapter weights of 1 process; a 2-rank checkpoint resumes on 1 rank; each
rank encodes only its own rows; each samples its share of the evaluation clips (tests/test_evaluation_sampling.py
shows the shares add up to the clips of 1 process); only rank 0 writes to MLflow."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from conftest import REPO, TINY_OVERRIDES, job_env

from asva.distributed import World, _first_host, world_from_env
from asva.files import load_torch

STEPS = 6
HELD_AT = 3  # the step before which the 2-rank run is killed, to resume on 1 rank


def job_args(workdir: Path, name: str, cache: str) -> list[str]:
    return [
        str(REPO / "sweeps" / "window_radius.py"),
        *TINY_OVERRIDES,
        f"train.finetune.steps={STEPS}",
        "train.finetune.batch_size=8",
        "pretrain=true",
        "train.pretrain.steps=4",
        "train.pretrain.batch_size=8",
        "train.finetune.checkpoint_every=1",
        "eval.batch_size=2",
        f"paths.cache_dir={workdir / cache}",
        f"paths.runs_dir={workdir / name}",
        f"hydra.run.dir={workdir / 'outputs' / name}",
    ]


def torchrun(workdir: Path, name: str, cache: str) -> list[str]:
    launcher = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return [launcher, "--standalone", "--nproc-per-node=2", *job_args(workdir, name, cache)]


def assert_same_weights(one: dict, two: dict) -> None:
    """Equal up to float noise: each tensor within 1e-4 of its norm. (Summation order differs across
    ranks; Adam's normalised steps carry that noise into the weights at about 1e-5 of their norm.)"""
    assert one.keys() == two.keys()
    for name, tensor in one.items():
        assert torch.linalg.vector_norm(two[name] - tensor) <= 1e-4 * torch.linalg.vector_norm(tensor), name


def test_two_ranks_train_both_stages_like_one_process_and_resume_on_one(tmp_path):
    env = job_env(tmp_path)
    single = subprocess.run(
        [sys.executable, *job_args(tmp_path, "single", "cache_single")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ranks = subprocess.run(
        torchrun(tmp_path, "ddp", "cache_ddp"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    assert "waits for rank 0 to prepare the data and the frozen parts" in ranks.stdout + ranks.stderr
    assert (
        "sampling test clips (with audio) (rank 1 of 2)" in ranks.stdout + ranks.stderr
    )  # its share of the evaluation

    # Stage 1 (trained data-parallel by both ranks, each in its own cache) and stage 2.
    [stage1_one] = (tmp_path / "cache_single" / "pretrain").glob("*/adapters.pt")
    [stage1_two] = (tmp_path / "cache_ddp" / "pretrain").glob("*/adapters.pt")
    stage1_one, stage1_two = load_torch(stage1_one), load_torch(stage1_two)
    assert_same_weights(stage1_one["weights"], stage1_two["weights"])
    assert stage1_two["losses"] == pytest.approx(stage1_one["losses"], rel=1e-5)
    [one] = (tmp_path / "single").glob("*/*/finetune.pt")
    [two] = (tmp_path / "ddp").glob("*/*/finetune.pt")  # rank 0 alone writes checkpoints
    one, two = load_torch(one), load_torch(two)
    assert one["sampler"]["batch_size"] == two["sampler"]["batch_size"] == 8
    assert_same_weights(one["weights"], two["weights"])
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("window_radius")
    jobs = client.search_runs([experiment.experiment_id], filter_string="params.`cfg.paths.runs_dir` LIKE '%ddp'")
    assert len(jobs) == 1 and jobs[0].info.status == "FINISHED"  # one run, written by rank 0
    history = client.get_metric_history(jobs[0].info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(STEPS))

    # A 2-rank run killed part-way through finetuning resumes on 1 rank and ends as the others.
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / f"hold-{HELD_AT}").touch()
    gated = {**env, "ASVA_TEST_GATE_DIR": str(gate), "PYTHONPATH": str(REPO / "tests" / "job_gate")}
    killed = subprocess.Popen(
        torchrun(tmp_path, "moved", "cache_ddp"),
        cwd=tmp_path,
        env=gated,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not (gate / f"held-{HELD_AT}").exists():
        assert killed.poll() is None and time.monotonic() < deadline, "the 2-rank run ended before it was held"
        time.sleep(0.05)
    kill_every_process_of(str(tmp_path / "moved"))  # torchrun and its ranks (they run in sessions of their own)
    killed.wait()
    [moved] = (tmp_path / "moved").glob("*/*/finetune.pt")
    assert load_torch(moved)["step"] == HELD_AT
    resumed = subprocess.run(
        [sys.executable, *job_args(tmp_path, "moved", "cache_ddp")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming MLflow run" in resumed.stdout
    moved = load_torch(moved)
    assert moved["step"] == STEPS
    assert_same_weights(one["weights"], moved["weights"])


def kill_every_process_of(argument: str) -> None:
    """SIGKILL every process whose command line holds `argument`, and wait until they are gone."""

    def matching() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and argument in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile
                continue
        return found

    deadline = time.monotonic() + 60
    while pids := matching():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, pids
        time.sleep(0.1)


def test_each_rank_reads_and_encodes_only_its_own_rows(monkeypatch):
    """Every rank draws the same global batch (videos and clip starts); each reads and encodes only
    its own rows, and together they read the one-process clips."""
    import asva.distributed as distributed
    from asva.config.schema import DataConfig
    from asva.data.windows import VideoWindows
    from asva.models.placement import CPU_FP32
    from asva.training.adapters import StageClips

    videos, fps, rate, seconds = 9, 4, 100, 3
    frames = torch.arange(videos * fps * seconds, dtype=torch.uint8)[:, None, None, None].expand(-1, 2, 2, 3)
    windows = VideoWindows.from_videos(
        [frames[v * fps * seconds : (v + 1) * fps * seconds] for v in range(videos)],
        [torch.zeros(rate * seconds) for _ in range(videos)],
        [0.0] * videos,
        clip_frames=fps,
        fps=fps,
        sample_rate=rate,
    )
    encoded: list[torch.Tensor] = []

    class Model:
        class base:
            @staticmethod
            def encode_video(clip_frames):
                encoded.append(clip_frames[:, 0, 0, 0, 0].clone())
                return clip_frames.float()

        @staticmethod
        def encode_audio(bank, audio, sample_rate):
            return ("features", len(audio))

    source = StageClips.__new__(StageClips)
    source.model, source.windows, source.placement, source.failed = Model, windows, CPU_FP32, set()
    source.clips, source.data = list(range(videos)), DataConfig(sample_rate=rate)
    monkeypatch.setattr("asva.data.loader.fbank", lambda audio, rate: audio)

    def step_two(data_parallel: bool):
        return next(iter(source.batches(7, seed=3, data_parallel=data_parallel)(2, 3)))

    whole = step_two(False)
    whole_frames, _, _ = source.encode(whole)
    shares, positions = [], []
    for rank in range(2):
        monkeypatch.setattr(distributed, "current", lambda rank=rank: World(rank, 2, 0))
        batch = step_two(True)
        mine, _, features = source.encode(batch)
        assert features == ("features", len(batch.rows)) and batch.global_size == 7
        shares.append(mine)
        positions.append(batch.positions)
    assert [len(batch) for batch in encoded] == [7, 4, 3]  # the whole batch, then each rank's rows alone
    assert torch.equal(torch.cat(positions), torch.arange(7))
    assert torch.equal(torch.cat(shares), whole_frames)  # the ranks' clips are the one-process clips


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
