"""Table 2's sweep as a user runs it: four jobs, stage 1 trained once per curation choice."""

from __future__ import annotations

import pytest
from conftest import TINY_OVERRIDES, path_overrides, require_executables
from test_sweeps import run_sweep, runs_of


@pytest.mark.slow
def test_curation_study_runs_the_two_by_two_grid(tmp_path):
    require_executables("tesseract")
    result = run_sweep(
        "curation.py",
        [*TINY_OVERRIDES, "curation_filters.workers=1", *path_overrides(tmp_path)],
        tmp_path,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(tmp_path, "curation")
    jobs = [r for r in runs if r.data.tags.get("asva.role") == "job"]
    grid = sorted((r.data.params["curation"], r.data.params["finetune"], r.data.params["pretrain"]) for r in jobs)
    assert grid == [
        ("auto", "false", "true"),
        ("auto", "true", "true"),
        ("none", "false", "true"),
        ("none", "true", "true"),
    ]
    assert {r.data.params["window_radius"] for r in jobs} == {"0.5"} and {
        r.data.params["audio_layers"] for r in jobs
    } == {"a:11"}
    pretrains = [r for r in runs if r.data.tags.get("asva.role") == "pretrain"]
    assert len(pretrains) == 2  # one stage 1 per curation choice, shared by its two jobs
    kept = {r.data.params["curation"]: r.data.metrics["curation_kept"] for r in pretrains}
    assert kept["auto"] < kept["none"]
    keys = {r.data.params["curation"]: r.data.tags["asva.pretrain_key"] for r in jobs}
    assert keys["auto"] != keys["none"]
