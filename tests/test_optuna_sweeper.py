"""`hydra/sweeper=optuna` (hydra_plugins/asva_optuna_sweeper): search space, trials as MLflow runs,
a study shared across sweepers, and a killed trial failed by its missing heartbeats and retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from conftest import REPO, TINY_OVERRIDES, job_env
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.asva_optuna_sweeper import _space as space

# These end-to-end searches leave the audio-layer dimension out: its second encoder would cost one
# more stand-in training per test; the search space parsing of its values is tested below.
SEARCH = ["~hydra.sweeper.params.audio_layers"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """The generated benchmark and stand-in parts, made once for every search in this module."""
    return tmp_path_factory.mktemp("optuna_cache")


def search_command(workdir: Path, cache: Path, sweep_name: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "sweeps" / "search.py"),
        "-m",
        *SEARCH,
        *TINY_OVERRIDES,
        *extra,
        f"paths.cache_dir={cache}",
        f"paths.runs_dir={workdir / 'runs'}",
        f"hydra.sweep.dir={workdir / 'multirun' / sweep_name}",
        f"hydra.run.dir={workdir / 'outputs'}",
    ]


def run_search(workdir: Path, cache: Path, sweep_name: str, *extra: str) -> subprocess.CompletedProcess:
    """`search_command(...)` to its end, its output captured."""
    return subprocess.run(
        search_command(workdir, cache, sweep_name, *extra),
        cwd=workdir,
        env=job_env(workdir),
        capture_output=True,
        text=True,
        timeout=900,
    )


def only_study(workdir: Path) -> optuna.Study:
    storage = f"sqlite:///{workdir / 'optuna.db'}"  # beside the SQLite tracking store, by default
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def job_runs(workdir: Path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("search")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [r for r in runs if r.data.tags.get("asva.role") == "job"], [
        r for r in runs if r.data.tags.get("asva.role") == "sweep"
    ]


def test_search_space_from_config_and_command_line():
    configured = {
        "window_radius": "interval(0.5, 3.0)",
        "audio_layers": "choice('a:11', 'a:3-7-11+b:3-7-11')",
        "train.finetune.lr": "tag(log, interval(1e-4, 1e-2))",
        "seed": "range(0, 3)",
    }
    distributions, fixed = space.parse(configured, ["window_radius=1.0", "train.finetune.steps=2"])
    assert fixed == ["window_radius=1.0", "train.finetune.steps=2"]  # a plain override fixes a dimension
    assert distributions == {
        "audio_layers": CategoricalDistribution(("a:11", "a:3-7-11+b:3-7-11")),
        "train.finetune.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "seed": IntDistribution(0, 2),
    }
    assert space.grid({k: d for k, d in distributions.items() if k != "train.finetune.lr"}) == {
        "audio_layers": ["a:11", "a:3-7-11+b:3-7-11"],
        "seed": [0, 1, 2],
    }
    with pytest.raises(space.SearchSpaceError, match="train.finetune.lr: the grid sampler needs choice"):
        space.grid(distributions)
    # Every sampled value survives Hydra's override grammar on its way to the job.
    parser = OverridesParser.create()
    for key, value in [
        ("audio_layers", "a:3-7-11+b:3-7-11"),
        ("window_radius", 1.25),
        ("train.finetune.lr", 3e-4),
        ("seed", 2),
    ]:
        (override,) = parser.parse_overrides([space.as_override(key, value)])
        assert override.value() == value


def test_three_trial_search_records_each_trial_and_a_rerun_adds_none(shared_cache, tmp_path):
    started = time.perf_counter()
    result = run_search(tmp_path, shared_cache, "first", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"3-trial tiny search: {time.perf_counter() - started:.1f} s")

    study = only_study(tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert all(
        0.5 <= t.params["window_radius"] <= 3.0 and 1e-4 <= t.params["train.finetune.lr"] <= 1e-2 for t in trials
    )

    jobs, parents = job_runs(tmp_path)
    assert len(parents) == 1 and len(jobs) == 3
    by_trial = {int(j.data.tags["asva.optuna_trial"]): j for j in jobs}
    assert sorted(by_trial) == [0, 1, 2]
    for trial in trials:
        run = by_trial[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["asva.optuna_study"] == study.study_name
        assert float(run.data.params["window_radius"]) == pytest.approx(trial.params["window_radius"])
        assert float(run.data.params["cfg.train.finetune.lr"]) == pytest.approx(trial.params["train.finetune.lr"])
        assert run.data.metrics["event_sync"] == pytest.approx(trial.value)  # the objective is the run's metric
    best = (tmp_path / "multirun" / "first" / "optimization_results.yaml").read_text()
    assert f"best_value: {study.best_value}" in best

    # The same search again (another SLURM job, say) finds the study complete: no trial, no run.
    again = run_search(tmp_path, shared_cache, "again", "hydra.sweeper.n_trials=3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(only_study(tmp_path).get_trials()) == 3
    assert len(job_runs(tmp_path)[0]) == 3


def test_killed_trial_is_failed_by_its_heartbeat_and_retried(shared_cache, tmp_path):
    beat = ["hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3"]
    victim = subprocess.Popen(
        search_command(tmp_path, shared_cache, "killed", *beat),
        cwd=tmp_path,
        env=job_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    # Kill once trial 0's job has opened its MLflow run and logged its params (it has then recorded
    # the run id where a rerun of the same configuration finds it): mid-job.
    while not [j for j in job_runs(tmp_path)[0] if "config_hash" in j.data.params]:
        assert victim.poll() is None, "the search ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    killed = only_study(tmp_path).get_trials()
    assert [t.state for t in killed] == [TrialState.RUNNING]  # nobody told the study
    time.sleep(4)  # past the grace period

    result = run_search(tmp_path, shared_cache, "resumed", *beat)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = only_study(tmp_path).get_trials()
    assert trials[0].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed[0].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert trials[-1].params != killed[0].params  # the rerun's sampler did not replay the first one's draws

    # The retry has the killed job's configuration: it resumed the same MLflow run, now tagged with
    # the retry's trial number; the other trial got a run of its own.
    jobs, parents = job_runs(tmp_path)
    assert len(parents) == 1 and len(jobs) == 2
    assert all(j.info.status == "FINISHED" for j in jobs)
    assert sorted(int(j.data.tags["asva.optuna_trial"]) for j in jobs) == sorted(
        t.number for t in trials if t.state == TrialState.COMPLETE
    )


def test_trial_whose_job_fails_is_marked_failed_and_stops_the_search(tmp_path):
    # Every window radius of this space is impossible: the job stops before any compute.
    result = run_search(
        tmp_path, tmp_path / "cache", "bad", "window_radius=interval(-2.0, -1.0)", "hydra.sweeper.n_trials=2"
    )
    assert result.returncode == 2
    assert "error: window_radius: must be > 0" in result.stderr
    assert [t.state for t in only_study(tmp_path).get_trials()] == [TrialState.FAIL]
