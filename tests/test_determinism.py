"""Same seed, same bytes, same numbers: the embedded benchmark and a job rerun from an empty cache.

Both run in fresh processes, side by side, so that nothing a process shares (a warm cache, the
heap, thread scheduling) can make two results agree by accident.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import mlflow
from conftest import REPO, TINY_OVERRIDES, job_env, path_overrides

GENERATE = """
import sys
from pathlib import Path
from asva.config.schema import DataConfig, SyntheticConfig
from asva.data.synthetic import generate
synthetic = SyntheticConfig(train_per_class=2, test_per_class=1, pool_per_class=3, openclass_per_class=2)
generate(DataConfig(synthetic=synthetic), Path(sys.argv[1]))
"""


def run_side_by_side(commands: list[list[str]], envs: list[dict[str, str]], cwds: list[Path], timeout: int) -> None:
    processes = [
        subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command, env, cwd in zip(commands, envs, cwds)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=timeout)
        assert process.returncode == 0, stderr[-3000:]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_embedded_benchmark_is_byte_identical_in_two_fresh_processes(tmp_path):
    roots = [tmp_path / "first", tmp_path / "second"]
    run_side_by_side(
        [[sys.executable, "-c", GENERATE, str(root)] for root in roots], [job_env(tmp_path)] * 2, [tmp_path] * 2, 600
    )
    first, second = (file_bytes(root) for root in roots)
    videos = [name for name in first if name.endswith(".mp4")]
    # 4 benchmark classes x 3 clips, 6 pool classes x 3, 2 open classes x 2.
    assert len(videos) == 34
    assert any(name.startswith("pool/") for name in videos) and any(name.startswith("openclass/") for name in videos)
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []
    with av.open(str(roots[0] / videos[0])) as container:  # real mp4 files with their sound
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1


def test_a_job_rerun_from_an_empty_cache_logs_identical_metrics(tmp_path):
    workdirs = [tmp_path / "first", tmp_path / "second"]
    for workdir in workdirs:
        workdir.mkdir()
    commands = [
        [
            sys.executable,
            str(REPO / "sweeps" / "window_radius.py"),
            "window_radius=0.5",
            *TINY_OVERRIDES,
            *path_overrides(workdir),
            f"hydra.run.dir={workdir / 'outputs'}",
        ]
        for workdir in workdirs
    ]
    run_side_by_side(commands, [job_env(workdir) for workdir in workdirs], workdirs, 900)
    logged = []
    for workdir in workdirs:
        client = mlflow.MlflowClient(tracking_uri=job_env(workdir)["MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name("window_radius")
        [run] = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("asva.role") == "job"]
        losses = [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)
        ]
        logged.append((run.data.metrics, losses))
    (first_metrics, first_losses), (second_metrics, second_losses) = logged
    assert "event_sync" in first_metrics and "event_sync_null_audio" in first_metrics and len(first_losses) == 2
    assert first_metrics == second_metrics  # exactly, not approximately
    assert first_losses == second_losses
