"""Hold the signals that end a job until the current training step is over, so that a checkpoint of
whole steps is written before the job goes.

SLURM announces preemption and the end of a job's time with SIGUSR2 (submitit asks for it, and its
handler requeues the job and exits) and stops jobs with SIGTERM. Arriving mid-step, either would end
the job with everything since the last periodic checkpoint lost. Inside `SignalsHeldUntilStepEnd`
they are only recorded; the loop, at the end of the step, saves and then hands each signal to the
handler that was installed before (submitit's, or the default action: the process ends).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

HELD_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class SignalsHeldUntilStepEnd:
    """A context in which HELD_SIGNALS are recorded, to be delivered by `deliver()` at a step's end."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.previous: dict[int, object] = {}

    def __enter__(self) -> SignalsHeldUntilStepEnd:
        # Python lets only the main thread install handlers; elsewhere signals act as they would.
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self._hold) for signum in HELD_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        log.warning(
            "%s received: the job saves a checkpoint at the end of this step, then acts on it",
            signal.Signals(signum).name,
        )
        self.pending.append(signum)

    def deliver(self) -> None:
        """Act on the held signals as their earlier handlers would have (this may end the process)."""
        pending, self.pending = self.pending, []
        for signum in pending:
            handler = self.previous.get(signum, signal.SIG_DFL)
            if callable(handler):
                handler(signum, None)  # e.g. submitit's: requeue the job, then exit
            elif handler == signal.SIG_DFL:
                self.__exit__()
                signal.raise_signal(signum)  # the default action: the process ends here
