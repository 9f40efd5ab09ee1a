"""Loaded by every Python process whose PYTHONPATH holds this folder: makes a job wait for its test.

A test that must interrupt a training job at a known step (tests/test_slurm.py, tests/test_resume.py,
tests/test_ddp.py) sets ASVA_TEST_GATE_DIR and creates `hold-<step>` files there. Before the training
loop (of rank 0, under data parallelism) starts such a step, it writes `held-<step>` and waits until
the test writes `release-<step>` (or ends the job).
The interruptions so land on known steps, however fast or loaded the machine is.
"""

import os

GATE = os.environ.get("ASVA_TEST_GATE_DIR")

if GATE:
    import time
    from pathlib import Path

    import asva.training.loop as loop
    from asva.distributed import world_from_env

    def wait_at_gates(steps):
        gate = Path(GATE)
        if not world_from_env().is_main:  # rank 0 holds; the others wait for it in their next collective
            yield from steps
            return
        for step in steps:
            if (gate / f"hold-{step}").exists() and not (gate / f"held-{step}").exists():
                (gate / f"held-{step}").write_text(str(os.getpid()))
                while not (gate / f"release-{step}").exists():
                    time.sleep(0.05)
            yield step

    class GatedProgress:
        """The loop's progress counter, its steps passing through the gates."""

        def __init__(self, counter):
            self.counter = counter

        def __iter__(self):
            return wait_at_gates(self.counter)

        def __getattr__(self, name):
            return getattr(self.counter, name)

    _progress_counter = loop.progress_counter
    loop.progress_counter = lambda *args, **kwargs: GatedProgress(_progress_counter(*args, **kwargs))
