"""Curation as a job of its own: shards merged into one manifest, resumable, VGGSound's CSV as
input, worker counts from the CPUs the process may use, and the manifest a training job reads."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import REPO, job_env

from asva.config.commands import CurateConfig
from asva.config.schema import CurationConfig, DataConfig, SyntheticConfig
from asva.cpus import usable_cpus
from asva.curation_job import run_curation, shard_of
from asva.data.curated_manifest import COLUMNS, ManifestRow, read_curated_manifest, write_curated_manifest
from asva.data.media import read_frames, write_video
from asva.data.synthetic import CLASSES, generate, render_frames, synthesize_audio
from asva.errors import ConfigError, DataError

FPS = 6
FILTERS = replace(CurationConfig(), workers=1, text=False)  # text detection is tested in test_curation.py


def clip(seconds=2.0, seed=0):
    """A clean drum clip, as tests/test_curation.py's (passes every filter)."""
    rng = np.random.default_rng(seed)
    events = [float(t) for t in np.arange(0.7, seconds - 0.2, 0.8)]
    frames = render_frames(CLASSES["drum"], events, FPS, seconds, 32, rng)
    return frames, synthesize_audio(CLASSES["drum"], events, seconds, 16000, rng)


def write(path: Path, seconds=2.0, seed=0) -> None:
    frames, audio = clip(seconds, seed)
    write_video(path, frames, FPS, audio)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, DataConfig]:
    small = SyntheticConfig(train_per_class=1, test_per_class=1, pool_per_class=1, openclass_per_class=0)
    data = DataConfig(synthetic=small)
    return generate(data, tmp_path_factory.mktemp("shards") / "bench"), data


@pytest.fixture
def folder(tmp_path, bench) -> Path:
    """Nine clean videos in two class folders, a broken file, and a copy of a test video, renamed."""
    root = tmp_path / "pool"
    for index in range(9):
        label = ("drum", "bell")[index % 2]
        write(root / label / f"v{index}.mp4", seed=index)
    (root / "drum" / "broken.mp4").write_bytes(b"not a video")
    test_video = sorted((bench[0] / "videos").rglob("*_test_000.mp4"))[0]
    _, frames = read_frames(test_video, 1000)
    write_video(
        root / "bell" / "innocent.mp4",
        np.concatenate([clip(seconds=1.0, seed=99)[0], frames]),
        FPS,
        np.zeros(16000 * 3) + 0.05 * np.sin(np.arange(16000 * 3)),
    )
    return root


def config(tmp_path, bench, root, output, **overrides) -> CurateConfig:
    data = replace(bench[1], leak_check_against=[str(bench[0])])
    cfg = CurateConfig(input=str(root), output=str(tmp_path / output), data=data, filters=FILTERS, **overrides)
    cfg.paths.cache_dir = str(tmp_path / "cache")
    return cfg


def curate_runs(store: str, output: Path):
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("curation")
    runs = client.search_runs([experiment.experiment_id], "tags.`asva.role` = 'curate'") if experiment else []
    return [r for r in runs if r.data.params.get("output") == str(output)]


def test_shards_merge_into_the_manifest_one_process_writes(tmp_path, bench, folder, session_store):
    whole = run_curation(config(tmp_path, bench, folder, "whole"))
    shards = 3
    assert len({shard_of(f"v{i}", shards) for i in range(9)}) == shards  # every shard has videos
    results = [run_curation(config(tmp_path, bench, folder, "sharded", shard=i, shards=shards)) for i in range(shards)]
    assert all("curate_shard_videos" in r for r in results[:-1])  # waiting for the others
    merged = results[-1]  # the last shard merged
    assert {k: v for k, v in merged.items() if "per_second" not in k} == {
        k: v for k, v in whole.items() if "per_second" not in k and k != "curate_shards"
    } | {"curate_shards": shards}
    assert merged["curate_kept_videos"] == 9 and merged["curate_rejected_test_split"] == 1
    assert merged["curate_rejected_metadata"] == 1 and merged["curate_clips_per_second"] > 0

    out = tmp_path / "sharded"
    assert (out / "manifest.csv").read_text() == (tmp_path / "whole" / "manifest.csv").read_text()
    assert (out / "manifest.csv").read_text().splitlines()[0] == "video_id,label,path,start,end"
    rows, classes = read_curated_manifest(out / "manifest.csv")
    assert [r.video_id for r in rows] == [f"v{i}" for i in range(9)] and classes == ["bell", "drum"]
    assert rows[1] == ManifestRow("v1", "bell", folder / "bell" / "v1.mp4", 0.0, 2.0)
    with open(out / "leak_removed.csv", newline="") as handle:
        [leak] = list(csv.DictReader(handle))
    assert leak["video_id"] == "innocent" and leak["test_video"].endswith("_test_000") and float(leak["offset"]) == 1.0
    with open(out / "rejections.csv", newline="") as handle:
        rejections = {(r["video_id"], r["filter"]): r["reason"] for r in csv.DictReader(handle) if not r["start"]}
    assert sorted(rejections) == [("broken", "metadata"), ("innocent", "test_split")]
    assert rejections["innocent", "test_split"].startswith(f"holds test video {leak['test_video']} ")
    [run] = curate_runs(session_store, out)
    artifacts = {a.path for a in mlflow.MlflowClient(session_store).list_artifacts(run.info.run_id)}
    assert {"manifest.csv", "rejections.csv", "leak_removed.csv"} <= artifacts
    assert run.data.params["shards"] == "3" and run.data.metrics["curate_rejected_test_split"] == 1

    again = run_curation(config(tmp_path, bench, folder, "sharded", shard=0, shards=shards))  # all done: nothing redone
    assert again == merged and len(curate_runs(session_store, out)) == 1


def test_merge_waits_for_every_shard_and_an_output_keeps_its_settings(tmp_path, bench, folder, session_store):
    with pytest.raises(DataError, match=r"merge: 2 of 2 shards are not done .*\(shards \[0, 1\]\)"):
        run_curation(config(tmp_path, bench, folder, "out", shards=2, merge=True))
    run_curation(config(tmp_path, bench, folder, "out", shard=1, shards=2))
    with pytest.raises(DataError, match=r"merge: 1 of 2 shards are not done .*\(shards \[0\]\)"):
        run_curation(config(tmp_path, bench, folder, "out", shards=2, merge=True))
    other = config(tmp_path, bench, folder, "out", shard=0, shards=2)
    other.filters = replace(FILTERS, max_flow=0.5)
    with pytest.raises(DataError, match=r"was curated with other settings \(filters differ from those in "):
        run_curation(other)
    assert not (tmp_path / "out" / "manifest.csv").exists()
    run_curation(config(tmp_path, bench, folder, "out", shard=0, shards=2))
    assert (tmp_path / "out" / "manifest.csv").is_file()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(shards=0), "shards: must be >= 1"),
        (dict(shard=2, shards=2), r"shard: must be within 0..1 \(shards=2\), got 2"),
        (dict(input=None, vggsound_csv="x.csv"), "vggsound_csv: needs input"),
    ],
)
def test_impossible_shard_settings_are_named(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_curation(replace(CurateConfig(output=str(tmp_path / "o")), **overrides))


def test_vggsound_csv_rows_are_curated_within_their_labelled_window(tmp_path, bench):
    clips = tmp_path / "vggsound"
    write(clips / "video" / "aaa_000030.mp4", seed=1)  # cut to its labelled window
    write(clips / "video" / "bbb.mp4", seconds=6.0, seed=2)  # a whole video, labelled from 4 s
    (clips / "vggsound.csv").write_text(
        "aaa,30,playing drum,train\nbbb,4,ringing bell,train\nccc,0,dog barking,train\nddd,0,playing drum,test\n"
    )
    cfg = config(tmp_path, bench, clips, "out", vggsound_csv="vggsound.csv")
    metrics = run_curation(cfg)
    rows, classes = read_curated_manifest(tmp_path / "out" / "manifest.csv")
    assert rows == [
        ManifestRow("aaa_000030", "playing drum", clips / "video" / "aaa_000030.mp4", 0.0, 2.0),
        ManifestRow("bbb_000004", "ringing bell", clips / "video" / "bbb.mp4", 4.0, 6.0),
    ]
    assert classes == ["playing drum", "ringing bell"] and metrics["curate_videos"] == 3  # train rows only
    with open(tmp_path / "out" / "rejections.csv", newline="") as handle:
        [missing] = list(csv.DictReader(handle))
    assert (missing["video_id"], missing["filter"]) == ("ccc_000000", "metadata")
    assert "not downloaded" in missing["reason"]


def test_usable_cpus_follow_affinity_and_slurm(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert usable_cpus() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert usable_cpus() == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "16")  # SLURM may grant more than the mask allows
    assert usable_cpus() == 4


def test_curation_pools_are_sized_from_usable_cpus(monkeypatch, tmp_path):
    from asva.data import curation

    seen = []
    monkeypatch.setattr(curation, "usable_cpus", lambda: 3)
    monkeypatch.setattr(curation, "_run_pool", lambda pending, cfg, finish: seen.append(cfg.workers))
    write(tmp_path / "v" / "a.mp4")
    curation.run_filters(curation.find_videos(tmp_path / "v"), replace(FILTERS, workers=None), tmp_path / "out")
    assert seen == [3]


def test_the_curated_manifest_fails_before_any_compute_naming_what_is_wrong(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    manifest = tmp_path / "manifest.csv"
    write_curated_manifest(manifest, [ManifestRow("a", "drum", video, 0.5, 2.0)])
    assert manifest.read_text().splitlines() == [",".join(COLUMNS), f"a,drum,{video},0.5000,2.0000"]
    assert read_curated_manifest(manifest) == ([ManifestRow("a", "drum", video, 0.5, 2.0)], ["drum"])
    with pytest.raises(DataError, match=f"curated manifest {tmp_path / 'nope.csv'} does not exist"):
        read_curated_manifest(tmp_path / "nope.csv")
    video.unlink()
    with pytest.raises(DataError, match=f"manifest.csv:2: video file {video} of a does not exist"):
        read_curated_manifest(manifest)
    manifest.write_text("video_id,label,path,segment,start,end\n")
    with pytest.raises(DataError, match="header must be video_id,label,path,start,end"):
        read_curated_manifest(manifest)


@pytest.mark.slow  # three Python processes start torch and MLflow: about a minute on 2 shared cores
def test_a_multirun_of_shards_as_local_processes_merges_once(tmp_path, bench, folder):
    """`-m shard=range(0,N)` through submitit's local launcher: each shard its own process."""
    output = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "sweeps" / "curate.py"),
        "-m",
        "hydra/launcher=submitit_local",
        "shards=2",
        "shard=range(0,2)",
        f"input={folder}",
        f"output={output}",
        f"data.leak_check_against=[{bench[0]}]",
        "filters.workers=1",
        "filters.text=false",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=job_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows, _ = read_curated_manifest(output / "manifest.csv")
    assert len(rows) == 9 and all(r.path.is_absolute() for r in rows)
    assert len(list((tmp_path / "multirun" / ".submitit").glob("*/*_result.pkl"))) == 2  # two processes
    assert len(curate_runs(job_env(tmp_path)["MLFLOW_TRACKING_URI"], output)) == 1


def test_the_slurm_cpu_launcher_gives_each_shard_one_cpu_task(monkeypatch):
    from hydra import compose, initialize_config_dir

    from asva.config.store import register

    monkeypatch.setenv("SLURM_PARTITION", "cpu")
    register()
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        cfg = compose("curate", overrides=["hydra/launcher=slurm_cpu", "shards=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "cpu"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.cpus_per_task, launcher.gpus_per_node) == (1, 1, 16, None)
    assert launcher.max_num_timeout > 0  # a preempted shard is requeued and resumes its journal
    assert (cfg.shards, cfg.shard, cfg.merge, cfg.filters.workers) == (4, 0, False, None)
