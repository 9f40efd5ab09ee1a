"""How many CPUs this process may use: the count every worker pool and thread pool is sized from.

`os.cpu_count()` counts the machine, not what the process was given: on a shared node or under
SLURM it over-subscribes the cores by the number of other tenants.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def usable_cpus() -> int:
    """The smaller of the process's CPU affinity mask and SLURM's CPUs per task (when set), >= 1."""
    counts = [len(os.sched_getaffinity(0))] if hasattr(os, "sched_getaffinity") else [1]
    allocated = os.environ.get("SLURM_CPUS_PER_TASK")
    if allocated:
        try:
            counts.append(int(allocated))
        except ValueError:
            log.warning("SLURM_CPUS_PER_TASK=%r is not a number: ignored", allocated)
    return max(1, min(counts))
