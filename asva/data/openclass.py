"""The open-class evaluation: held-out clips of classes the benchmark lacks (the paper's Figure 1).

The embedded pretraining pool holds classes (clapper, bell) that the benchmark does not, as
VGGSound holds classes AVSync15 lacks. The generator writes a few more clips of those classes in
openclass/ beside the benchmark (data.synthetic.openclass_per_class each; never in the pool, and
checked against it by the leak check in tests/test_dataset.py). The job samples them like the test
split and logs the same metrics as `<metric>_openclass`, so a table shows the in-domain and the
open-class score side by side (analysis/tables.py).

Only the synthetic dataset has this split: a real dataset (avsync15, avsync48) logs no open-class
metric, and the evaluation's log line of metrics not computed says so. eval.openclass=false
switches it off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asva.config.schema import ExperimentConfig
from asva.data import sources
from asva.data.dataset import ClipSet, load_split
from asva.progress import progress

OPENCLASS_DIR = "openclass"
SUFFIX = "_openclass"
EVERY_METRIC = "*" + SUFFIX  # how the evaluation's log line names them all when none is computed


def openclass_root(cfg: ExperimentConfig) -> Path | None:
    """The open-class folder of this configuration's benchmark, or None (a real dataset, or none generated)."""
    if cfg.data.name != "synthetic":
        return None
    root = sources.benchmark_root(cfg.data, Path(cfg.paths.cache_dir)) / OPENCLASS_DIR
    return root if (root / "test.txt").is_file() else None


def load_openclass(cfg: ExperimentConfig) -> ClipSet | None:
    root = openclass_root(cfg)
    return None if root is None else load_split(root, "test", cfg.data, cfg.paths.cache_dir)


def openclass_metrics(model, cfg: ExperimentConfig, seed: int, nets=None) -> tuple[dict[str, float], dict[str, str]]:
    """`<metric>_openclass` of the model on the open-class clips, and why each metric that is not
    computed is not (none when eval.openclass is off: nothing was asked for).

    Sampled with audio only (no null-audio control, no reference rows), with `eval.batch_size`;
    `nets` (the paper-metric networks, or None) adds the paper metrics.
    """
    from asva.evaluation.evaluate import skeleton_metrics
    from asva.evaluation.paper_metrics import paper_scores
    from asva.evaluation.sampling import sample

    if not cfg.eval.openclass:
        return {}, {}
    if cfg.data.name != "synthetic":
        return {}, {EVERY_METRIC: f"{cfg.data.name} has no open-class split, only the synthetic benchmark has one"}
    clips = load_openclass(cfg)
    if clips is None or len(clips) == 0:
        return {}, {EVERY_METRIC: "no open-class clips were generated (data.synthetic.openclass_per_class=0)"}
    features = model.encode_audio(clips.fbank, clips.audio, cfg.data.sample_rate)
    captions = [label.replace("_", " ") for label in clips.labels]
    outputs = []
    for start in progress(range(0, len(clips), cfg.eval.batch_size), desc="sampling open-class clips", unit="batch"):
        index = torch.arange(start, min(start + cfg.eval.batch_size, len(clips)))
        # Starting noise of its own, apart from the test split's (evaluate.py seeds seed * 1_000_003 + start).
        generator = torch.Generator().manual_seed(seed * 1_000_003 + 500_009 + start)
        outputs.append(sample(model, clips.frames[index], features.select(index), [captions[i] for i in index], cfg.diffusion, generator, True))
    generated = torch.cat(outputs).numpy()
    metrics, skipped = skeleton_metrics(clips, {SUFFIX: generated}, cfg)
    metrics["num_test_clips" + SUFFIX] = float(len(clips))
    if nets is not None:
        scores = paper_scores(nets, clips.frames.numpy(), clips.fbank, captions, generated, cfg.data.fps, suffix=SUFFIX)
        metrics.update(scores.metrics)
        skipped.update(scores.skipped)
    return {name: float(np.asarray(value)) for name, value in metrics.items()}, skipped
