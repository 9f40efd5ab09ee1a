"""Hydra entry point: `python sweeps/evaluate.py run_id=RUN` or `checkpoint=PATH [job overrides]`.

The papers' evaluation protocol on a trained job (asva/evaluation/standalone.py): 3 clips per test
video, every metric with its reference rows, logged to the run; generated clips are cached.
"""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.commands import EvaluateConfig
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict[str, float]:
    from asva.evaluation.standalone import run_evaluation  # when the job runs, not on import (see asva/cli.py run)

    return cli.run_command(cfg, EvaluateConfig, run_evaluation)


if __name__ == "__main__":
    main()
