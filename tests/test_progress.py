"""asva.progress: a tqdm bar on a terminal, log lines with rate and ETA when not on one."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
from tqdm import tqdm

from asva import progress as progress_module
from asva.progress import LoggedProgress, configure_logging, progress

SCRIPT = textwrap.dedent(
    """
    import sys
    from asva.progress import configure_logging, progress
    if sys.argv[1] == "configured":
        configure_logging()
    for _ in progress(range(4), desc="decoding", unit="clip", log_every_seconds=0):
        pass
    """
)


def test_off_a_terminal_every_update_past_the_interval_is_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "attached_to_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="asva.progress")
    counter = progress(range(3), desc="sampling", unit="batch", log_every_seconds=0)
    assert isinstance(counter, LoggedProgress)
    assert list(counter) == [0, 1, 2]
    lines = [record.getMessage() for record in caplog.records if record.name == "asva.progress"]
    # One line per step, the last one not repeated at the end: counts, percentages, rate and ETA.
    assert [line.split("|")[0] for line in lines] == ["sampling:  33%", "sampling:  67%", "sampling: 100%"]
    assert "1/3 [" in lines[0] and "batch/s]" in lines[0] and "<" in lines[0]  # elapsed<remaining
    assert "3/3" in lines[-1]


def test_off_a_terminal_lines_are_rate_limited_and_carry_the_postfix(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "attached_to_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="asva.progress")
    with progress(desc="training", total=1000, unit="step", initial=10, log_every_seconds=3600) as counter:
        for _ in range(990):
            counter.update(1)
        counter.set_postfix(loss="0.1234")
    lines = [record.getMessage() for record in caplog.records if record.name == "asva.progress"]
    assert len(lines) == 1  # the interval never passed: only the closing line
    assert lines[0].startswith("training: 100%") and "1000/1000" in lines[0] and lines[0].endswith("loss=0.1234")
    counter.close()
    assert (
        len([record for record in caplog.records if record.name == "asva.progress"]) == 1
    )  # closing twice adds nothing
    with pytest.raises(TypeError, match="wraps no iterable"):
        iter(progress(desc="x", total=1)).__next__()


def test_on_a_terminal_it_is_a_tqdm_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "attached_to_terminal", lambda: True)
    bar = progress([1, 2], desc="decoding", unit="clip")
    assert isinstance(bar, tqdm) and bar.total == 2 and bar.unit == "clip"
    bar.close()


def test_entry_points_that_configure_logging_print_the_lines_off_a_terminal() -> None:
    def run(mode: str) -> str:
        result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
        return result.stderr

    configured = run("configured")
    lines = [line for line in configured.splitlines() if "[asva.progress][INFO] - decoding:" in line]
    assert len(lines) == 4 and "4/4" in lines[-1] and "clip/s]" in lines[-1]
    assert "\r" not in configured  # no bar redrawn in a log file
    # Without a handler Python drops INFO records: this is why entry points call configure_logging.
    assert "decoding" not in run("unconfigured")


def test_configure_logging_leaves_existing_configuration_alone() -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    placeholder = logging.NullHandler()
    if not handlers:
        root.addHandler(placeholder)
    try:
        before = list(root.handlers)
        configure_logging()
        assert root.handlers == before
    finally:
        root.removeHandler(placeholder)
