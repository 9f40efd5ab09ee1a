"""The entry points as a user runs them: subprocesses, real Hydra, real MLflow (a private store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO, TINY_OVERRIDES, composed, job_env, path_overrides


def run_sweep(script: str, args: list[str], workdir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "sweeps" / script),
            *args,
            f"hydra.sweep.dir={workdir / 'multirun' / script}-{len(args)}",
            f"hydra.run.dir={workdir / 'outputs'}",
        ],
        cwd=workdir,
        env=job_env(workdir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def runs_of(workdir: Path, study: str):
    client = mlflow.MlflowClient(tracking_uri=job_env(workdir)["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(study)
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.parametrize(
    "override, message",
    [
        ("k=500", "error: k: 500 is larger than the 90 training videos of class 'hammer'"),
        ("data.root=/no/such/folder", "error: data.root: /no/such/folder does not exist"),
        ("audio_layers=c:1", "error: audio_layers: unknown encoder 'c'"),
        ("train.finetune.lr=0", "error: train.finetune.lr: must be > 0, got 0.0"),
    ],
)
def test_invalid_values_fail_in_one_line_before_compute(tmp_path, capsys, override, message):
    """What the entry point runs (asva.cli.run on the composed config), in this process."""
    from asva import cli

    with pytest.raises(SystemExit) as exit:
        cli.run(composed(override, *path_overrides(tmp_path)))
    assert exit.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # nothing was generated or trained


def test_the_entry_point_exits_2_with_the_one_line_and_no_traceback(tmp_path):
    result = run_sweep("window_radius.py", ["window_radius=-1", *path_overrides(tmp_path)], tmp_path, timeout=120)
    assert result.returncode == 2
    assert "error: window_radius: must be > 0, got -1.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()


def test_unknown_key_is_named(tmp_path):
    result = run_sweep("window_radius.py", ["no_such_key=1"], tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Key 'no_such_key' not in 'ExperimentConfig'" in result.stderr
    assert "Traceback" not in result.stderr


# submitit_local runs each job in a process of its own: slow, and the submitit path of the launcher
# (hydra-submitit's BaseSubmititLauncher) runs in the default suite through tests/test_slurm.py.
@pytest.mark.parametrize("launcher", ["basic", pytest.param("submitit_local", marks=pytest.mark.slow)])
def test_two_job_multirun_writes_nested_runs(tmp_path, launcher):
    args = [
        "-m",
        "window_radius=0.5,2.0",
        "seed=1",  # the window radius sweep trains every seed on the whole split (k-shot runs it once)
        f"hydra/launcher={launcher}",
        *TINY_OVERRIDES,
        *path_overrides(tmp_path),
    ]
    result = run_sweep("window_radius.py", args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(tmp_path, "window_radius")
    parents = [r for r in runs if r.data.tags.get("asva.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("asva.role") == "job"]
    assert len(parents) == 1 and len(jobs) == 2
    assert all(j.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for j in jobs)
    assert sorted(j.data.params["window_radius"] for j in jobs) == ["0.5", "2.0"]
    for job in jobs:
        assert job.info.status == "FINISHED"
        assert job.data.tags["asva.study"] == "window_radius"
        for key in ("dataset", "fps", "audio_layers", "k", "pretrain", "curation", "finetune", "seed", "config_hash"):
            assert key in job.data.params
        assert job.data.params["k"] == "all" and job.data.params["pretrain"] == "false"
        assert job.data.params["seed"] == "1" and "final_train_loss" in job.data.metrics
        assert {"event_sync", "event_sync_null_audio", "event_sync_ref_groundtruth", "event_sync_ref_static"} <= set(
            job.data.metrics
        )
        assert job.data.metrics["event_sync_ref_static"] == 0.0
        assert not {"fvd", "relsync", "alignsync"} & set(job.data.metrics)
        history = mlflow.MlflowClient(tracking_uri=job_env(tmp_path)["MLFLOW_TRACKING_URI"]).get_metric_history(
            job.info.run_id, "train_loss"
        )
        assert len(history) == 2
        artifacts = Path(job.info.artifact_uri.removeprefix("file://"))
        assert (artifacts / "config.yaml").is_file()
        assert len(list((artifacts / "samples").glob("*.mp4"))) == 1


def test_kshot_trains_stage_one_once_and_reuses_it(tmp_path):
    args = ["k=0,1,all", "seed=0,1", *TINY_OVERRIDES, *path_overrides(tmp_path)]
    result = run_sweep("kshot.py", args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(tmp_path, "kshot")
    pretrains = [r for r in runs if r.data.tags.get("asva.role") == "pretrain"]
    jobs = [r for r in runs if r.data.tags.get("asva.role") == "job"]
    # k=0: the pretrained model once; k=1: 2 seeds x (finetune-only, pretrain+finetune);
    # k=all: one seed x both.
    assert sorted((j.data.params["k"], j.data.params["pretrain"], j.data.params["seed"]) for j in jobs) == [
        ("0", "true", "0"),
        ("1", "false", "0"),
        ("1", "false", "1"),
        ("1", "true", "0"),
        ("1", "true", "1"),
        ("all", "false", "0"),
        ("all", "true", "0"),
    ]
    zero = next(j for j in jobs if j.data.params["k"] == "0")
    assert zero.data.params["finetune"] == "false" and "final_train_loss" not in zero.data.metrics
    subsets = {
        (j.data.params["seed"], j.data.params["pretrain"]): Path(
            j.info.artifact_uri.removeprefix("file://"), "finetune_video_ids.txt"
        ).read_text()
        for j in jobs
        if j.data.params["k"] == "1"
    }
    # The same seed draws the same K-shot subset with and without pretraining; seeds differ.
    assert subsets[("0", "false")] == subsets[("0", "true")] != subsets[("1", "false")]
    assert len(pretrains) == 1
    keys = {j.data.tags["asva.pretrain_key"] for j in jobs if j.data.params["pretrain"] == "true"}
    assert keys == {pretrains[0].data.tags["asva.pretrain_key"]}

    # The same sweep again trains nothing: every configuration has a finished run (config hash),
    # and the parent run is reused.
    checkpoints = {path: path.stat().st_mtime_ns for path in (tmp_path / "runs").glob("kshot/*/finetune.pt")}
    again = run_sweep("kshot.py", args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert "finetuning adapters" not in output and "trained once" not in output
    assert output.count("already finished in MLflow run") == 7
    runs_after = runs_of(tmp_path, "kshot")
    assert sorted(r.info.run_id for r in runs_after) == sorted(r.info.run_id for r in runs)
    [parent] = [r for r in runs_after if r.data.tags.get("asva.role") == "sweep"]
    assert parent.info.status == "FINISHED"
    assert {path: path.stat().st_mtime_ns for path in checkpoints} == checkpoints


# Slow: the default seeds are what tests/test_launcher_config.py sees submitted, and a seed other than 0
# trains on the whole split in test_two_job_multirun_writes_nested_runs.
@pytest.mark.slow
def test_window_radius_sweep_runs_three_seeds_of_each_row_on_the_whole_split(tmp_path):
    args = ["-m", "window_radius=0.5", *TINY_OVERRIDES, *path_overrides(tmp_path)]  # the default seeds
    result = run_sweep("window_radius.py", args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [r for r in runs_of(tmp_path, "window_radius") if r.data.tags.get("asva.role") == "job"]
    # k=all (the whole training split) is not run once only here, as it is in the k-shot sweep.
    rows = sorted((j.data.params["k"], j.data.params["seed"]) for j in jobs)
    assert rows == [("all", "0"), ("all", "1"), ("all", "2")]
    assert len({j.data.metrics["final_train_loss"] for j in jobs}) == 3  # each seed trains a model of its own


# Slow: the grid is what tests/test_launcher_config.py sees submitted, and the trainable parameters
# of each feature set are counted in tests/test_params.py without training.
@pytest.mark.slow
def test_encoder_layer_grid_runs_every_feature_set(tmp_path):
    args = ["-m", "seed=0", *TINY_OVERRIDES, *path_overrides(tmp_path)]  # one seed: the grid, not the seeds
    result = run_sweep("encoder_layers.py", args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [r for r in runs_of(tmp_path, "encoder_layers") if r.data.tags.get("asva.role") == "job"]
    assert sorted(j.data.params["audio_layers"] for j in jobs) == ["a:11", "a:3-7-11", "a:3-7-11+b:3-7-11", "a:7-9-11"]
    params = {j.data.params["audio_layers"]: int(j.data.params["trainable_parameters"]) for j in jobs}
    # One projection per tapped layer: six taps hold more trainable weights than one.
    assert params["a:3-7-11+b:3-7-11"] > params["a:3-7-11"] > params["a:11"]


def test_a_worker_that_imports_an_entry_point_again_loads_no_torch():
    """A job's spawned workers (the leak check's process pool) run its entry point's imports again, as
    `__mp_main__`: they must stay light, or each worker pays seconds for torch, MLflow and diffusers."""
    check = (
        "import runpy, sys\n"
        "for script in sys.argv[1:]:\n"
        "    runpy.run_path(script, run_name='__mp_main__')\n"
        "print(sorted({'torch', 'mlflow', 'diffusers'} & set(sys.modules)))\n"
    )
    scripts = sorted(str(path) for path in (REPO / "sweeps").glob("*.py"))
    assert len(scripts) >= 9
    result = subprocess.run(
        [sys.executable, "-c", check, *scripts], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
