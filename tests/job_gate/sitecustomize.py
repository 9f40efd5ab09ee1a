"""Loaded by every Python process whose PYTHONPATH holds this folder: makes a job wait for its test.

A test that must interrupt a job at a known step (tests/test_slurm.py) sets ASVA_TEST_GATE_DIR and
creates `hold-<step>` files there. When the training loop has written the checkpoint of such a step,
it writes `held-<step>` and waits there until the test has done what it does next (requeue the job,
send it a signal, kill it). The interruptions so land on known steps, however fast the machine is.
"""

import os

GATE = os.environ.get("ASVA_TEST_GATE_DIR")

if GATE:
    import time
    from pathlib import Path

    import asva.training.loop as loop

    _save_checkpoint = loop.save_checkpoint

    def save_checkpoint_then_hold(path, state):
        _save_checkpoint(path, state)
        gate = Path(GATE)
        step = state["step"]
        if (gate / f"hold-{step}").exists() and not (gate / f"held-{step}").exists():
            (gate / f"held-{step}").write_text(str(os.getpid()))
            while True:  # until the test's requeue kills this attempt, or its signal handler exits
                time.sleep(0.1)

    loop.save_checkpoint = save_checkpoint_then_hold
