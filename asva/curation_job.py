"""`sweeps/curate.py`: curation as a job of its own, sharded, resumable, merged into one manifest.

The videos (a folder, VGGSound's CSV with its clips, or the embedded pool) are split into
`shards` shards by a hash of their id. A run curates one shard (`shard=i shards=N`; a multirun
`-m shard='range(0,N)'` runs every shard, one after another or as local processes or a SLURM array
through the submitit launchers) into `<output>/shards/<i>-of-<N>/`: the filters' journal (a
killed shard resumes with the videos it had not finished), then the leak check (pool videos that
hold a test video's footage are removed, asva/data/leakcheck.py), then its verdicts and `done.json`.
The run that finds every shard done merges them, under a lock, into `<output>/manifest.csv` (one row
per kept video: its longest kept segment, asva/data/curated_manifest.py), `rejections.csv` and
`leak_removed.csv`, and logs the MLflow run (tag asva.study=curation, asva.role=curate): filter
settings as params, counts (and on the embedded pool each filter's precision and recall against
the generator's defect labels) as metrics, the three CSVs as artifacts. `merge=true` only merges.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asva.config.commands import CurateConfig
from asva.config.hashing import stable_hash
from asva.config.validate import check_files_and_device
from asva.data import curation, sources
from asva.data.curated_manifest import ManifestRow, write_curated_manifest
from asva.data.dataset import VGGSOUND_SECONDS, read_vggsound_csv, vggsound_clip
from asva.data.leakcheck import LEAK_COLUMNS, evaluation_videos, find_leak_matches, write_leak_removed
from asva.errors import DataError
from asva.files import claim_settings, lock, write_csv, write_text
from asva.tracking.runs import RunLogger, flatten

log = logging.getLogger(__name__)

ROLE_CURATE = "curate"
SHARDS = "shards"
SETTINGS = "settings.json"
VERDICTS = "verdicts.jsonl"
DONE = "done.json"
MERGED = "merged.json"
MANIFEST = "manifest.csv"
REJECTIONS = "rejections.csv"
LEAK_REMOVED = "leak_removed.csv"
LEAK_FILTER = "test_split"  # the rejection a leak gets (curate_rejected_test_split counts them)


@dataclass
class Listing:
    """One shard's videos, the labelled window of those that are whole VGGSound videos, and the
    CSV rows whose clip was never downloaded (already rejected)."""

    videos: list[curation.Video] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    missing: list[curation.Verdict] = field(default_factory=list)


def shard_of(video_id: str, shards: int) -> int:
    """The shard a video belongs to: stable across runs, machines and Python's hash seed."""
    return zlib.crc32(video_id.encode()) % shards


def source_root(cfg: CurateConfig) -> Path:
    """The folder to curate: `input`, or the embedded pool (generated if needed)."""
    if cfg.input is None:
        benchmark = sources.benchmark_root(cfg.data, Path(cfg.paths.cache_dir))
        sources.ensure_generated(cfg.data, benchmark)
        return benchmark / "pool"
    root = Path(cfg.input).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"input: {root} does not exist or is not a folder")
    return root


def list_shard(cfg: CurateConfig, root: Path) -> Listing:
    listing = Listing()
    if cfg.vggsound_csv is None:
        listing.videos = [v for v in curation.find_videos(root) if shard_of(v.video_id, cfg.shards) == cfg.shard]
        return listing
    csv_path = Path(cfg.vggsound_csv).expanduser()
    csv_path = csv_path if csv_path.is_absolute() else root / csv_path
    seen: set[str] = set()
    for youtube_id, start, label, split in read_vggsound_csv(csv_path):
        video_id = f"{youtube_id}_{int(start):06d}"  # as asva/data/dataset.py names VGGSound rows
        if split != "train" or video_id in seen:
            continue
        seen.add(video_id)
        if shard_of(video_id, cfg.shards) != cfg.shard:
            continue
        found = vggsound_clip(root, youtube_id, start)
        if found is None:
            verdict = curation.Verdict(video_id, label, str(root / f"{video_id}.mp4"))
            verdict.rejected.append(("metadata", None, None, "not downloaded: no clip of this row under input"))
            listing.missing.append(verdict)
            continue
        path, offset = found
        listing.videos.append(curation.Video(video_id, label, str(path)))
        if offset:  # a whole YouTube video: only its labelled 10 s carry the label
            listing.windows[video_id] = (offset, offset + VGGSOUND_SECONDS)
    return listing


def clip_to_window(verdict: curation.Verdict, window: tuple[float, float], min_seconds: float) -> None:
    """Keep only what of each kept segment lies in the labelled window (and is still long enough)."""
    kept = []
    for start, end in verdict.kept:
        first, last = max(start, window[0]), min(end, window[1])
        if last - first >= min_seconds - 1e-6:
            kept.append((round(first, 4), round(last, 4)))
        else:
            reason = f"outside the labelled window {window[0]:g}-{window[1]:g} s of the VGGSound row"
            verdict.rejected.append(("metadata", start, end, reason))
    verdict.kept = kept


def settings_of(cfg: CurateConfig, root: Path, tests: list[Path]) -> dict:
    """What decides the verdicts: every shard of an output must have been run with the same."""
    filters = {k: v for k, v in asdict(cfg.filters).items() if k != "workers"}
    return {
        "input": str(root),
        "vggsound_csv": cfg.vggsound_csv,
        "shards": cfg.shards,
        "filters": filters,
        "test_videos": stable_hash(sorted(str(p) for p in tests)),
    }


def shard_folder(output: Path, shard: int, shards: int) -> Path:
    return output / SHARDS / f"{shard:05d}-of-{shards:05d}"


def run_shard(cfg: CurateConfig, root: Path, output: Path, tests: list[Path]) -> dict:
    """Curate one shard (resuming its journal), remove its leaks, write its verdicts and done.json."""
    folder = shard_folder(output, cfg.shard, cfg.shards)
    if (folder / DONE).is_file():
        log.info("curation shard %d of %d is already done (%s)", cfg.shard, cfg.shards, folder)
        return json.loads((folder / DONE).read_text())
    started = time.monotonic()
    listing = list_shard(cfg, root)
    examined = []
    verdicts = curation.run_filters(listing.videos, cfg.filters, folder, on_verdict=examined.append)
    for video_id, window in listing.windows.items():
        clip_to_window(verdicts[video_id], window, cfg.filters.min_seconds)
    kept = [(v.video_id, v.path) for v in verdicts.values() if v.kept]
    leaks = find_leak_matches(kept, tests, Path(cfg.paths.cache_dir), cfg.filters.workers)
    for video_id, hit in leaks.items():
        verdict = verdicts[video_id]
        verdict.kept = []
        verdict.rejected.append(
            (
                LEAK_FILTER,
                None,
                None,
                (
                    f"holds test video {hit.test_id} ({hit.test_path}) from {hit.offset:g} s: "
                    f"{hit.frames} frames match, {hit.hamming:.1f} bits apart"
                ),
            )
        )
    verdicts.update({v.video_id: v for v in listing.missing})
    write_lines(folder / VERDICTS, [json.dumps(asdict(v)) for v in sorted(verdicts.values(), key=lambda v: v.video_id)])
    write_leak_removed(folder / LEAK_REMOVED, list(leaks.values()))
    seconds = time.monotonic() - started
    done = {"videos": len(verdicts), "examined": len(examined), "seconds": round(seconds, 3)}
    write_lines(folder / DONE, [json.dumps(done)])
    log.info(
        "curation shard %d of %d done: %d videos, %d examined in %.1f s, %d leaks removed",
        cfg.shard,
        cfg.shards,
        len(verdicts),
        len(examined),
        seconds,
        len(leaks),
    )
    return done


def write_lines(path: Path, lines: list[str]) -> None:
    write_text(path, "".join(f"{line}\n" for line in lines))


def read_verdicts(path: Path) -> list[curation.Verdict]:
    verdicts = []
    for line in path.read_text().splitlines():
        verdict = curation.Verdict(**json.loads(line))
        verdict.kept = [tuple(k) for k in verdict.kept]
        verdict.rejected = [tuple(r) for r in verdict.rejected]
        verdicts.append(verdict)
    return verdicts


def longest_segment(verdict: curation.Verdict) -> ManifestRow:
    start, end = max(verdict.kept, key=lambda span: (span[1] - span[0], -span[0]))
    return ManifestRow(verdict.video_id, verdict.label, Path(os.path.abspath(verdict.path)), start, end)


def merge(cfg: CurateConfig, root: Path, output: Path) -> dict[str, float] | None:
    """Merge the shards into one manifest and log the run, once every shard is done (else None)."""
    folders = [shard_folder(output, shard, cfg.shards) for shard in range(cfg.shards)]
    with lock(output / "merge"):
        waiting = [shard for shard, folder in enumerate(folders) if not (folder / DONE).is_file()]
        if waiting:
            if cfg.merge:
                raise DataError(
                    f"merge: {len(waiting)} of {cfg.shards} shards are not done under {output / SHARDS} "
                    f"(shards {waiting[:10]}): run them first (shard=i shards={cfg.shards})"
                )
            log.info("curation: merging when the other shards are done (%d waiting: %s)", len(waiting), waiting[:10])
            return None
        stamps = [json.loads((folder / DONE).read_text()) for folder in folders]
        marker = output / MERGED
        if marker.is_file() and json.loads(marker.read_text())["shards"] == stamps:
            log.info("curation: %s is already merged", output)
            return json.loads(marker.read_text())["metrics"]
        metrics = _write_merged(cfg, root, output, folders, stamps)
        write_lines(marker, [json.dumps({"shards": stamps, "metrics": metrics})])
    return metrics


def _write_merged(
    cfg: CurateConfig, root: Path, output: Path, folders: list[Path], stamps: list[dict]
) -> dict[str, float]:
    verdicts = sorted((v for folder in folders for v in read_verdicts(folder / VERDICTS)), key=lambda v: v.video_id)
    manifest, rejections, leaks = output / MANIFEST, output / REJECTIONS, output / LEAK_REMOVED
    write_curated_manifest(manifest, [longest_segment(v) for v in verdicts if v.kept])
    write_csv(rejections, curation.REJECTION_COLUMNS, curation.rejection_rows(verdicts))
    leak_rows = []
    for folder in folders:
        with open(folder / LEAK_REMOVED, newline="") as handle:
            leak_rows.extend(csv.DictReader(handle))
    write_csv(leaks, LEAK_COLUMNS, sorted(leak_rows, key=lambda row: row["video_id"]))

    metrics = curation.counts(verdicts)
    metrics["curate_shards"] = len(folders)
    examined, seconds = sum(s["examined"] for s in stamps), sum(s["seconds"] for s in stamps)
    if examined and seconds > 0:
        metrics["curate_clips_per_second"] = examined / seconds  # per shard process (filters + leak check)
    truth = curation.ground_truth(root)
    if truth:
        metrics.update(curation.precision_recall(verdicts, truth))
    _log_run(cfg, root, output, metrics, [manifest, rejections, leaks])
    rounded = {k: round(v, 3) for k, v in metrics.items()}
    log.info("curation merged %d shards into %s: %s", len(folders), manifest, rounded)
    return metrics


def _log_run(cfg: CurateConfig, root: Path, output: Path, metrics: dict[str, float], artifacts: list[Path]) -> None:
    checked = [cfg.data.name] if cfg.data.leak_check_against is None else cfg.data.leak_check_against
    run = RunLogger.create(cfg.study, ROLE_CURATE, f"curate {root.name}", tags={"asva.curation_input": str(root)})
    try:
        run.log_params(
            {
                "input": str(root),
                "vggsound_csv": str(cfg.vggsound_csv),
                "output": str(output),
                "shards": str(cfg.shards),
                "leak_check_against": str(checked),
                "flow_method": curation.flow_method(cfg.filters),
                "text_method": curation.text_method(cfg.filters),
                **{f"filters.{k}": v for k, v in flatten(asdict(cfg.filters)).items() if k != "workers"},
            }
        )
        run.log_metrics(metrics)
        for artifact in artifacts:
            run.log_artifact(artifact)
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()


def run_curation(cfg: CurateConfig) -> dict[str, float]:
    """Run shard `cfg.shard` (unless `merge`), then merge if every shard is done. Returns the merged
    metrics, or this shard's counts while other shards are still running."""
    check_files_and_device(cfg)
    root = source_root(cfg)
    output = Path(cfg.output).expanduser().absolute()
    tests = evaluation_videos(cfg.data.leak_check_against, cfg.data, Path(cfg.paths.cache_dir))
    claim_settings(output / SETTINGS, settings_of(cfg, root, tests), f"output: {output} was curated")
    done = {} if cfg.merge else run_shard(cfg, root, output, tests)
    merged = merge(cfg, root, output)
    if merged is not None:
        return merged
    return {f"curate_shard_{key}": float(value) for key, value in done.items()}
