"""The open-class split: held-out clips of the pool-only classes, and their `_openclass` metrics."""

from __future__ import annotations

from pathlib import Path

from asva.config.schema import DataConfig, ExperimentConfig, SyntheticConfig
from asva.data.dataset import load_split
from asva.data.leakcheck import find_leak_matches
from asva.data.openclass import load_openclass
from asva.data.synthetic import generate

SMALL = dict(train_per_class=2, test_per_class=1, pool_per_class=3)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "done"
    }


def test_openclass_clips_leave_the_benchmark_and_pool_byte_identical(tmp_path):
    without = generate(DataConfig(synthetic=SyntheticConfig(**SMALL, openclass_per_class=0)), tmp_path / "without")
    data = DataConfig(synthetic=SyntheticConfig(**SMALL, openclass_per_class=2))
    with_open = generate(data, tmp_path / "with")
    before, after = files(without), files(with_open)
    assert not any(name.startswith("openclass/") for name in before)
    opened = {name: content for name, content in after.items() if name.startswith("openclass/")}
    assert {name: content for name, content in after.items() if name not in opened} == before
    assert sorted(name for name in opened if name.endswith(".mp4")) == [
        f"openclass/videos/{label}/{label}_openclass_{i:03d}.mp4" for label in ("bell", "clapper") for i in range(2)
    ]

    cache = tmp_path / "cache"
    held_out = load_split(with_open / "openclass", "test", data, cache)
    benchmark = set((with_open / "classes.txt").read_text().split())
    pool = load_split(with_open / "pool", "train", data, cache)
    assert len(held_out) == 4 and set(held_out.labels) == {"bell", "clapper"}
    assert not set(held_out.labels) & benchmark  # classes the benchmark lacks ...
    assert set(held_out.labels) <= set(pool.classes)  # ... that pretraining sees in the pool
    assert all(times for times in held_out.event_times)
    assert not set(held_out.video_ids) & set(pool.video_ids)
    entries = list(zip(pool.video_ids, pool.paths))
    assert find_leak_matches(entries, held_out.paths, cache / "leakcheck") == {}  # no open-class footage in the pool
    # The check can fail here: a pool video passed off as an open-class clip is caught.
    planted = find_leak_matches(entries, [*held_out.paths, pool.paths[0]], cache / "leakcheck")
    assert list(planted) == [pool.video_ids[0]]


def test_a_real_dataset_has_no_openclass_split(tmp_path):
    cfg = ExperimentConfig()
    cfg.data.name, cfg.data.root, cfg.paths.cache_dir = "avsync15", str(tmp_path), str(tmp_path / "cache")
    (tmp_path / "openclass").mkdir()
    (tmp_path / "openclass" / "test.txt").write_text("")
    assert load_openclass(cfg) is None


def test_tiny_job_logs_openclass_metrics(tiny_job, session_store):
    import mlflow

    tiny_job("data.synthetic.openclass_per_class=1", "study=openclass")
    client = mlflow.MlflowClient(session_store)
    experiment = client.get_experiment_by_name("openclass").experiment_id
    [job] = client.search_runs([experiment], "tags.`asva.role` = 'job'")
    metrics = job.data.metrics
    assert metrics["num_test_clips_openclass"] == 2.0  # one clip of each pool-only class
    assert 0.0 <= metrics["event_sync_openclass"] <= 100.0
    assert {"fd_pixel_synth_openclass", "relsync_embedded_openclass", "ia_embedded_openclass"} <= set(metrics)
    assert "event_sync" in metrics  # beside the in-domain scores


def test_openclass_switch_logs_nothing_and_a_real_dataset_says_why(tmp_path):
    from asva.evaluation.evaluate import openclass_to_score

    cfg = ExperimentConfig()
    cfg.paths.cache_dir = str(tmp_path)
    cfg.eval.openclass = False
    assert openclass_to_score(cfg) == (None, {})  # switched off: nothing loaded, nothing sampled, nothing to report
    cfg.eval.openclass = True
    cfg.data.name, cfg.data.root = "avsync15", str(tmp_path)
    clips, skipped = openclass_to_score(cfg)
    assert clips is None and skipped == {
        "*_openclass": "avsync15 has no open-class split, only the synthetic benchmark has one"
    }
