"""The curation pipeline: each filter on clips made to trip it and to pass it, broken files, resume
after a kill, the test-split leak check, and its MLflow record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import mlflow
import numpy as np
import pytest
import torch
from conftest import REPO, require_executables
from omegaconf import OmegaConf

from asva.config.commands import CurateConfig
from asva.config.schema import CurationConfig, DataConfig, ExperimentConfig, SyntheticConfig
from asva.data import curation
from asva.data.curated_manifest import read_curated_manifest
from asva.data.dataset import load_split
from asva.data.media import write_video
from asva.data.synthetic import (
    CLASSES,
    add_camera_shake,
    add_caption,
    add_scene_cut,
    plan_clips,
    render_frames,
    second_shot,
    synthesize_audio,
)
from asva.errors import DataError

SIZE = 32  # the embedded pool's frame size, where the filter thresholds were calibrated
FPS = 6


def clip(label="drum", events=(0.7, 1.5), seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    frames = render_frames(CLASSES[label], list(events), FPS, seconds, SIZE, rng)
    audio = synthesize_audio(CLASSES[label], list(events), seconds, 16000, rng)
    return frames, audio


def write(path, frames, audio, fps=FPS):
    write_video(path, frames, fps, audio)
    return curation.Video(Path(path).stem, "drum", str(path))


def verdict_of(video, **overrides):
    return curation.examine(video, replace(CurationConfig(), workers=1, **overrides))


def only_rejection(verdict):
    assert not verdict.kept, verdict
    assert len(verdict.rejected) == 1, verdict.rejected
    return verdict.rejected[0]


@pytest.fixture(autouse=True)
def _tesseract():
    require_executables("tesseract")


def test_a_clean_clip_passes_every_filter(tmp_path):
    verdict = verdict_of(write(tmp_path / "clean.mp4", *clip()))
    assert verdict.kept == [(0.0, 2.0)] and verdict.rejected == []


def test_scene_cut_splits_into_segments_and_drops_short_ones(tmp_path):
    first, audio = clip(seconds=2.0)
    rng = np.random.default_rng(0)
    cut = add_scene_cut(first, second_shot(CLASSES["bell"], FPS, 2.0, SIZE, rng), rng)
    verdict = verdict_of(write(tmp_path / "cut.mp4", cut, audio))
    assert not verdict.kept and len(verdict.rejected) == 2  # one reason per too-short segment
    assert all(stage == "scenes" and "after a cut" in reason for stage, _, _, reason in verdict.rejected)
    assert verdict.rejected[0][2] == pytest.approx(verdict.rejected[1][1], abs=1e-3)
    # A 6-s video cut at 3 s: two single-shot segments, both kept.
    long_a, audio6 = clip(events=(1.0, 2.5), seconds=3.0)
    long_b = second_shot(CLASSES["bell"], FPS, 3.0, SIZE, rng)
    video = write(tmp_path / "two_shots.mp4", np.concatenate([long_a, long_b]), np.concatenate([audio6, audio6]))
    verdict = verdict_of(video)
    assert verdict.kept == [(0.0, 3.0), (3.0, 6.0)]


def test_violent_motion_and_still_pictures_are_dropped_by_flow(tmp_path):
    frames, audio = clip()
    stage, *_, reason = only_rejection(
        verdict_of(write(tmp_path / "shake.mp4", add_camera_shake(frames, np.random.default_rng(1)), audio))
    )
    assert stage == "flow" and reason.startswith("sharp motion: 75% of frame pairs") and "farneback" in reason
    still = np.repeat(frames[:1], len(frames), axis=0)
    stage, *_, reason = only_rejection(verdict_of(write(tmp_path / "still.mp4", still, audio)))
    assert stage == "flow" and reason.startswith("no motion")


def test_on_screen_text_is_dropped(tmp_path):
    frames, audio = clip()
    video = write(tmp_path / "caption.mp4", add_caption(frames, np.random.default_rng(3)), audio)
    stage, *_, reason = only_rejection(verdict_of(video))
    assert stage == "text" and "on-screen text" in reason
    assert verdict_of(video, text=False).kept == [(0.0, 2.0)]  # each filter can be switched off


def write_vfr(path):
    """Frames at irregular times (variable frame rate), with sound."""
    frames, audio = clip(seconds=3.0)
    ticks = np.cumsum([0] + [3, 9] * 9)[: len(frames)]  # 1/30 s ticks: 0.1 s and 0.3 s gaps in turn
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        for image, tick in zip(frames, ticks):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = int(tick)
            frame.time_base = Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        chunk = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = 16000, 0, Fraction(1, 16000)
        for packet in [*sound.encode(chunk), *sound.encode()]:
            container.mux(packet)


def malformed(folder: Path) -> dict[str, tuple[str, str]]:
    """Broken files, each with (filter, start of the reason) it must be rejected with."""
    frames, audio = clip()
    good = folder / "good.mp4"
    write_video(good, frames, FPS, audio)
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 3 : len(data) // 3 + 2000] = os.urandom(2000)
    (folder / "corrupt.mp4").write_bytes(bytes(corrupt[:48]) + os.urandom(len(data) - 48))
    write_video(folder / "no_audio.mp4", frames, FPS)
    write_video(folder / "silent.mp4", frames, FPS, np.zeros_like(audio))
    write_video(folder / "one_frame.mp4", frames[:1], FPS, audio[:2667])
    write_video(folder / "half_second.mp4", frames[:3], FPS, audio[:8000])
    write_vfr(folder / "vfr.mp4")
    (folder / "not_video.mp4").write_text("this is a text file with a video extension\n")
    return {
        "truncated": ("metadata", "not a readable media container"),
        "corrupt": ("metadata", "not a readable media container"),
        "no_audio": ("metadata", "no audio track"),
        "silent": ("audio", "silent audio"),
        "one_frame": ("metadata", "single frame"),
        "half_second": ("metadata", "too short: 0.50 s"),
        "vfr": ("metadata", "variable frame rate"),
        "not_video": ("metadata", "not a readable media container"),
    }


def test_each_broken_file_is_rejected_with_its_reason_and_nothing_crashes(tmp_path):
    expected = malformed(tmp_path)
    verdicts = curation.run_filters(
        curation.find_videos(tmp_path), replace(CurationConfig(), workers=2), tmp_path / "out"
    )
    assert verdicts["good"].kept == [(0.0, 2.0)]
    for name, (stage, reason) in expected.items():
        got = only_rejection(verdicts[name])
        assert got[0] == stage and got[3].startswith(reason), (name, got)
    rows = curation.rejection_rows(verdicts.values())
    assert sorted(r["video_id"] for r in rows) == sorted(expected)  # one reason each


RESUME_SCRIPT = """
import sys
import time
from dataclasses import replace
from pathlib import Path
from asva.config.schema import CurationConfig
from asva.data import curation
root, out = Path(sys.argv[1]), Path(sys.argv[2])
hold_after = int(sys.argv[3]) if len(sys.argv) > 3 else None
verdicts = []

def hold(verdict):  # however fast the machine, the test's kill comes before the run can end
    verdicts.append(verdict)
    while len(verdicts) == hold_after:
        time.sleep(0.1)

curation.run_filters(curation.find_videos(root), replace(CurationConfig(), workers=1, text=False), out, on_verdict=hold)
"""


def journal_ids(out: Path) -> list[str]:
    lines = (out / curation.JOURNAL).read_bytes().split(b"\n")
    return [json.loads(line)["video_id"] for line in lines if line.strip()]


def test_a_killed_curation_resumes_without_duplicates_or_losses(tmp_path):
    root, out = tmp_path / "videos", tmp_path / "out"
    for index in range(24):
        frames, audio = clip(seed=index)
        write_video(root / "drum" / f"v{index:02d}.mp4", frames, FPS, audio)
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, str(script), str(root), str(out), "12"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / curation.JOURNAL).is_file() and len(journal_ids(out)) >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = journal_ids(out)
    assert 3 <= len(before) <= 12, "the run was not killed in the middle"
    subprocess.run([sys.executable, str(script), str(root), str(out)], env=env, check=True)
    after = journal_ids(out)
    assert after[: len(before)] == before  # nothing redone
    assert sorted(after) == [f"v{index:02d}" for index in range(24)]  # nothing lost, nothing twice


@pytest.mark.slow  # RAFT on CPU: about 20 s
def test_raft_from_a_weights_file_is_named_in_the_manifest(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    cfg = replace(CurationConfig(), raft_weights=str(weights), flow_pairs=2, text=False, max_flow=1e9, min_flow=0.0)
    frames, audio = clip()
    verdict = curation.examine(write(tmp_path / "a.mp4", frames, audio), cfg)
    assert verdict.kept == [(0.0, 2.0)], verdict.rejected
    magnitudes = curation.raft_magnitudes(frames, [0, 5], str(weights), "small")
    assert magnitudes.shape == (2,) and np.isfinite(magnitudes).all()
    assert curation.manifest_rows([verdict], cfg)[0]["flow_method"] == "raft_small"
    missing = curation.examine(
        write(tmp_path / "b.mp4", frames, audio), replace(cfg, raft_weights=str(tmp_path / "nope.pth"))
    )
    assert "raft_weights" in only_rejection(missing)[3]


def small_benchmark(tmp_path) -> tuple[Path, DataConfig]:
    from asva.data.synthetic import generate

    data = DataConfig(synthetic=SyntheticConfig(train_per_class=1, test_per_class=2, pool_per_class=3))
    return generate(data, tmp_path / "bench"), data


def test_curate_job_logs_to_mlflow_and_drops_test_videos(tmp_path, session_store):
    from asva.curation_job import run_curation

    bench, data = small_benchmark(tmp_path)
    pool = tmp_path / "pool"
    test_video = sorted((bench / "videos").rglob("*_test_000.mp4"))[0]
    (pool / "a").mkdir(parents=True)
    (pool / "a" / test_video.name).write_bytes(test_video.read_bytes())
    write_video(pool / "a" / "fresh.mp4", clip()[0], FPS, clip()[1])
    cfg = CurateConfig(
        input=str(pool),
        output=str(tmp_path / "out"),
        filters=replace(CurationConfig(), workers=1),
        data=replace(data, leak_check_against=[str(bench)]),
    )
    cfg.paths.cache_dir = str(tmp_path / "cache")
    metrics = run_curation(cfg)
    assert metrics["curate_rejected_test_split"] == 1 and metrics["curate_kept_videos"] == 1
    rows, _ = read_curated_manifest(tmp_path / "out" / "manifest.csv")
    assert [r.video_id for r in rows] == ["fresh"]
    run = mlflow.MlflowClient(session_store).search_runs(
        [mlflow.get_experiment_by_name("curation").experiment_id], "tags.`asva.role` = 'curate'"
    )[0]
    assert run.data.tags["asva.study"] == "curation"
    assert run.data.metrics["curate_kept_segments"] == 1 and run.data.params["flow_method"] == "farneback"
    artifacts = {a.path for a in mlflow.MlflowClient(session_store).list_artifacts(run.info.run_id)}
    assert {"manifest.csv", "rejections.csv", "leak_removed.csv"} <= artifacts


def test_pool_defects_have_ground_truth_and_leave_the_benchmark_unchanged():
    base = SyntheticConfig(train_per_class=3, test_per_class=2, pool_per_class=30)
    clean = replace(
        base,
        pool_misaligned_fraction=0,
        pool_distractor_fraction=0,
        pool_static_fraction=0,
        pool_scene_cut_fraction=0,
        pool_violent_motion_fraction=0,
        pool_text_fraction=0,
    )
    defective, untouched = plan_clips(base, 2.0), plan_clips(clean, 2.0)
    benchmark = [s for s in defective if s.split != "pool"]
    assert benchmark == [s for s in untouched if s.split != "pool"]
    kinds = {s.corruption for s in defective if s.split == "pool"}
    assert {"scene_cut", "violent_motion", "text", "misaligned", "static", "clean"} <= kinds
    assert {s.corruption for s in untouched} == {"clean"}


def test_precision_and_recall_against_the_generator_labels():
    def verdict(vid, stage):
        v = curation.Verdict(vid, "x", vid)
        if stage:
            v.rejected = [(stage, 0.0, 2.0, "why")]
        else:
            v.kept = [(0.0, 2.0)]
        return v

    verdicts = [verdict("a", "scenes"), verdict("b", "scenes"), verdict("c", None), verdict("d", "text")]
    truth = {"a": "scene_cut", "b": "clean", "c": "scene_cut", "d": "text"}
    scores = curation.precision_recall(verdicts, truth)
    assert scores["precision_scenes"] == 0.5 and scores["recall_scenes"] == 0.5
    assert scores["precision_text"] == 1.0 and scores["recall_text"] == 1.0
    assert scores["defective_share_kept"] == 1.0


def test_pretraining_cache_keys_on_the_curation_choice():
    import torch

    from asva.data.dataset import ClipSet
    from asva.training.pretrain import pretrain_key

    pool = ClipSet(
        ["a"],
        ["drum"],
        torch.zeros(1, 1, 1, 1, 3, dtype=torch.uint8),
        torch.zeros(1, 4),
        torch.zeros(1, 1, 1),
        [[]],
        ["drum"],
    )
    none, auto = ExperimentConfig(curation="none"), ExperimentConfig(curation="auto")
    stricter = ExperimentConfig(curation="auto")
    stricter.curation_filters.max_text_area = 0.01
    keys = {pretrain_key(c, pool) for c in (none, auto, stricter)}
    assert len(keys) == 3
    more_workers = ExperimentConfig(curation="auto")
    more_workers.curation_filters.workers = 8
    assert pretrain_key(more_workers, pool) == pretrain_key(auto, pool)


def test_stage_one_trains_on_the_curated_clips_only(tmp_path):
    from asva.training.pretrain import curated_pool

    bench, data = small_benchmark(tmp_path)
    pool = load_split(bench / "pool", "train", data, tmp_path / "cache")
    truth = curation.ground_truth(bench / "pool")
    cfg = ExperimentConfig(curation="none", data=data)
    assert curated_pool(cfg, pool, tmp_path / "cache")[0] is pool
    cfg = ExperimentConfig(curation="auto", data=data)
    cfg.curation_filters.workers = 1
    kept, rejected = curated_pool(cfg, pool, tmp_path / "cache")
    assert 0 < len(kept) < len(pool)
    assert set(kept.video_ids) | set(rejected) == set(pool.video_ids) and not set(kept.video_ids) & set(rejected)
    assert all(truth[vid] not in {"scene_cut", "static", "violent_motion"} for vid in kept.video_ids)
    index = pool.video_ids.index(kept.video_ids[0])
    assert torch.equal(kept.frames[0], pool.frames[index])  # the pool's own decoded clip
    again, _ = curated_pool(cfg, pool, tmp_path / "cache")  # cached: the journal has every video
    assert again.video_ids == kept.video_ids


def test_curation_rejecting_the_whole_pool_fails_naming_its_written_rejections(tmp_path):
    from asva.training.pretrain import curated_pool

    bench, data = small_benchmark(tmp_path)
    pool = load_split(bench / "pool", "train", data, tmp_path / "cache")
    cfg = ExperimentConfig(curation="auto", data=data)
    cfg.curation_filters.workers = 1
    cfg.curation_filters.min_seconds = 60.0  # every pool video is shorter: rejected by its metadata
    with pytest.raises(DataError, match="curation rejected every one of the") as error:
        curated_pool(cfg, pool, tmp_path / "cache")
    rejections = Path(str(error.value).split("(see ")[1].rstrip(")"))
    assert len(rejections.read_text().splitlines()) == 1 + len(pool)  # header, one reason per video


@pytest.mark.parametrize(
    ("config", "override", "key"),
    [
        ("curation", "curation_filters=footage", "curation_filters"),
        ("curate", "curation_filters@filters=footage", "filters"),
    ],
)
def test_footage_thresholds_are_one_preset_away(config, override, key):
    from conftest import REPO
    from hydra import compose, initialize_config_dir

    from asva.config.store import register

    register()
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        embedded = OmegaConf.select(compose(config_name=config), key)
        footage = OmegaConf.select(compose(config_name=config, overrides=[override]), key)
    assert (embedded.scene_threshold, embedded.min_side) == (60.0, 32)
    assert (footage.scene_threshold, footage.min_side) == (27.0, 256)
    assert footage.max_flow == embedded.max_flow  # a share of the frame: the same for any size
