"""asva/files.py: a failed write leaves the previous file and no debris, a cache is built by one of
several concurrent processes, and a folder's settings are recorded once and a run with others refused."""

from __future__ import annotations

import csv
import json
import multiprocessing
import time
from pathlib import Path

import pytest
import torch

from asva.errors import DataError
from asva.files import atomic_open, build_once, claim_settings, load_torch, save_torch, write_csv, write_text


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "state.txt"
    write_text(path, "complete")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half of a new ")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_csv_and_torch_files_read_back(tmp_path):
    rows = [{"video_id": "a", "reason": "text, on screen"}, {"video_id": "b", "reason": ""}]
    write_csv(tmp_path / "out" / "rows.csv", ["video_id", "reason"], rows)
    with open(tmp_path / "out" / "rows.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == rows
    save_torch(tmp_path / "payload.pt", {"weights": torch.arange(3), "losses": [1.0]})
    loaded = load_torch(tmp_path / "payload.pt")
    assert torch.equal(loaded["weights"], torch.arange(3)) and loaded["losses"] == [1.0]


def _build_and_count(path: Path, builds: Path, start, result: Path) -> None:
    def build() -> dict:
        with open(builds, "a") as handle:
            handle.write("built\n")
        time.sleep(0.3)  # the other process reaches the lock meanwhile
        return {"value": 7}

    start.wait()  # both processes ask at the same moment
    result.write_text(str(build_once(path, build)["value"]))


def test_concurrent_jobs_build_a_cache_once_and_read_the_same_result(tmp_path):
    path, builds = tmp_path / "cache" / "net.pt", tmp_path / "builds.txt"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    jobs = [
        context.Process(target=_build_and_count, args=(path, builds, start, tmp_path / f"result-{i}")) for i in range(2)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
    assert [job.exitcode for job in jobs] == [0, 0]
    assert [(tmp_path / f"result-{i}").read_text() for i in range(2)] == ["7", "7"]
    assert builds.read_text() == "built\n"


def test_settings_are_recorded_on_the_first_run_and_a_run_with_others_refused(tmp_path):
    path = tmp_path / "out" / "settings.json"
    claim_settings(path, {"shards": 2, "fps": 6}, "out was made")
    claim_settings(path, {"shards": 2, "fps": 6}, "out was made")  # the same settings: the run may resume
    assert json.loads(path.read_text()) == {"shards": 2, "fps": 6}
    # What differs, a key the first run did not record among them.
    with pytest.raises(DataError, match=r"^out was made with other settings \(sets, shards differ from those in "):
        claim_settings(path, {"shards": 3, "fps": 6, "sets": "pool"}, "out was made")
    assert json.loads(path.read_text()) == {"shards": 2, "fps": 6}
