"""The open-class clips: held-out clips of classes the benchmark lacks (the paper's Figure 1).

The embedded pretraining pool holds classes (clapper, bell) that the benchmark does not, as
VGGSound holds classes AVSync15 lacks. The generator writes a few more clips of those classes in
openclass/ beside the benchmark (data.synthetic.openclass_per_class each; never in the pool, and
checked against it by the leak check in tests/test_dataset.py). A job's evaluation samples and
scores them like the test split (asva/evaluation/evaluate.py) and logs the same metrics as
`<metric>_openclass`, so a table shows the in-domain and the open-class score side by side
(analysis/tables.py).

Only the synthetic dataset has this split: a real dataset (avsync15, avsync48) logs no open-class
metric, and the evaluation's log line of metrics not computed says so. eval.openclass=false
switches it off.
"""

from __future__ import annotations

from pathlib import Path

from asva.config.schema import ExperimentConfig
from asva.data import sources
from asva.data.dataset import ClipSet, load_split

OPENCLASS_DIR = "openclass"


def openclass_root(cfg: ExperimentConfig) -> Path | None:
    """The open-class folder of this configuration's benchmark, or None (a real dataset, or none generated)."""
    if cfg.data.name != "synthetic":
        return None
    root = sources.benchmark_root(cfg.data, Path(cfg.paths.cache_dir)) / OPENCLASS_DIR
    return root if (root / "test.txt").is_file() else None


def load_openclass(cfg: ExperimentConfig) -> ClipSet | None:
    root = openclass_root(cfg)
    return None if root is None else load_split(root, "test", cfg.data, cfg.paths.cache_dir)


def openclass_clips(cfg: ExperimentConfig) -> tuple[ClipSet | None, str]:
    """The open-class clips of this configuration's benchmark, or None and why there are none."""
    if cfg.data.name != "synthetic":
        return None, f"{cfg.data.name} has no open-class split, only the synthetic benchmark has one"
    clips = load_openclass(cfg)
    if clips is None or len(clips) == 0:
        return None, "no open-class clips were generated (data.synthetic.openclass_per_class=0)"
    return clips, ""
