"""`sweeps/curate.py`: curate a folder of videos, write its manifest and log it to MLflow.

The run (tag asva.study=curation, asva.role=curate) holds the filter settings as params, the
counts per filter (and, on the embedded pool, each filter's precision and recall against the
generator's defect labels) as metrics, and manifest.csv and rejections.csv as artifacts. A kept
video that is also in a benchmark's test split is rejected (filter `test_split`), and the final
manifest is checked again, so a curated pool never shares a video with a test split.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from asva.config.schema import CurateConfig
from asva.data import curation, sources
from asva.data.dataset import load_split
from asva.data.leakcheck import clip_thumbnails, find_leaks
from asva.config.validate import validate_curation_filters
from asva.tracking.runs import RunLogger, flatten

log = logging.getLogger(__name__)

ROLE_CURATE = "curate"


def _inputs(cfg: CurateConfig) -> tuple[Path, list[Path]]:
    """(folder to curate, benchmark folders whose test split must stay out)."""
    if cfg.input is None:
        root = sources.benchmark_root(cfg.data, Path(cfg.paths.cache_dir))
        sources.ensure_generated(cfg.data, root)
        benchmarks = [root] if cfg.benchmarks is None else [Path(b) for b in cfg.benchmarks]
        return root / "pool", benchmarks
    return Path(cfg.input).expanduser(), [Path(b).expanduser() for b in (cfg.benchmarks or [])]


def _test_leaks(verdicts: dict[str, curation.Verdict], benchmarks: list[Path], cfg: CurateConfig) -> dict[str, str]:
    leaks: dict[str, str] = {}
    for benchmark in benchmarks:
        test = load_split(benchmark, "test", cfg.data, Path(cfg.paths.cache_dir))
        kept = [v for v in verdicts.values() if v.kept]
        found = find_leaks([v.video_id for v in kept], [v.thumbnail for v in kept], test.video_ids, clip_thumbnails(test.frames))
        leaks.update({vid: f"{benchmark.name} test split: {why}" for vid, why in found.items()})
    return leaks


def run_curation(cfg: CurateConfig) -> dict[str, float]:
    validate_curation_filters(cfg.filters, "filters")
    root, benchmarks = _inputs(cfg)
    output = Path(cfg.output).expanduser()
    videos = curation.find_videos(root)
    started = time.monotonic()
    already = len(curation.read_journal(output)) if output.is_dir() else 0
    verdicts = curation.run_filters(videos, cfg.filters, output)
    elapsed = time.monotonic() - started
    for video_id, why in _test_leaks(verdicts, benchmarks, cfg).items():
        verdicts[video_id].kept = []
        verdicts[video_id].rejected.append(("test_split", None, None, why))
    manifest, rejections = curation.write_outputs(output, verdicts, cfg.filters)
    remaining = _test_leaks(verdicts, benchmarks, cfg)
    assert not remaining, f"curated manifest still shares test videos: {remaining}"

    metrics = curation.counts(verdicts.values())
    processed = len(videos) - already
    if processed and elapsed > 0:
        metrics["curate_clips_per_second"] = processed / elapsed
    truth = curation.ground_truth(root)
    if truth:
        metrics.update(curation.precision_recall(verdicts.values(), truth))
    run = RunLogger.create(cfg.study, ROLE_CURATE, f"curate {root.name}", tags={"asva.curation_input": str(root)})
    try:
        run.log_params({
            "input": str(root),
            "output": str(output),
            "flow_method": curation.flow_method(cfg.filters),
            "text_method": curation.text_method(cfg.filters),
            **{f"filters.{k}": v for k, v in flatten(asdict(cfg.filters)).items()},
        })
        run.log_metrics(metrics)
        run.log_artifact(manifest)
        run.log_artifact(rejections)
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()
    log.info("curation: %s", {k: round(v, 3) for k, v in metrics.items()})
    return metrics
