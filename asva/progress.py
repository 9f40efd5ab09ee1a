"""Progress reporting for long work: a tqdm bar on a terminal, plain log lines elsewhere.

CI logs and SLURM output files are not terminals: a bar there becomes one endless line of carriage
returns, so off a terminal the same counter is written as a line every `log_every_seconds` (and at
the end), with tqdm's own rate and ETA formatting.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from tqdm import tqdm

Item = TypeVar("Item")

log = logging.getLogger("asva.progress")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's default job format


def configure_logging(level: int = logging.INFO) -> None:
    """The project's INFO log lines on stderr for entry points that are not Hydra apps (Hydra
    configures its own): without a handler, Python drops INFO records, and with them every
    progress line off a terminal. Other libraries stay at WARNING (matplotlib chats at INFO).
    Does nothing when logging is already configured (Hydra, pytest, a notebook's host)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
        logging.getLogger("asva").setLevel(level)


def attached_to_terminal() -> bool:
    return sys.stderr.isatty()


class LoggedProgress(Generic[Item]):
    """The subset of tqdm's interface the project uses, reporting through `logging`."""

    def __init__(
        self,
        iterable: Iterable[Item] | None,
        desc: str,
        total: float | None,
        unit: str,
        initial: int,
        log_every_seconds: float,
    ) -> None:
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.unit = unit
        self.n = initial
        self.initial = initial
        self.log_every_seconds = log_every_seconds
        self.started = time.monotonic()
        self.last_logged = self.started
        self.logged_count: float | None = None  # the count of the last line written
        self.postfix = ""

    def __iter__(self) -> Iterator[Item]:
        if self.iterable is None:
            raise TypeError("this progress counter wraps no iterable; call update() instead")
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LoggedProgress[Item]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set_postfix(self, **values: object) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def update(self, count: int = 1) -> None:
        self.n += count
        now = time.monotonic()
        if now - self.last_logged >= self.log_every_seconds:
            self.last_logged = now
            self._log(now)

    def close(self) -> None:
        # The closing line, unless the last update wrote this very count (or a second close()).
        if (self.n != self.initial or self.total == 0) and self.logged_count != self.n:
            self._log(time.monotonic())

    def _log(self, now: float) -> None:
        line = tqdm.format_meter(
            self.n, self.total, now - self.started, prefix=self.desc, unit=self.unit, initial=self.initial
        )
        log.info(f"{line} {self.postfix}".rstrip())
        self.logged_count = self.n


def progress(
    iterable: Iterable[Item] | None = None,
    *,
    desc: str,
    total: float | None = None,
    unit: str = "it",
    initial: int = 0,
    log_every_seconds: float = 30.0,
) -> tqdm | LoggedProgress[Item]:
    """A progress bar with rate and ETA on a terminal; periodic log lines when not on one."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if attached_to_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit, initial=initial, dynamic_ncols=True)
    return LoggedProgress(iterable, desc, total, unit, initial, log_every_seconds)
