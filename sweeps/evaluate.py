"""Hydra entry point: `python sweeps/evaluate.py run_id=RUN` or `checkpoint=PATH [job overrides]`.

The papers' evaluation protocol on a trained job (asva/evaluation/standalone.py): 3 clips per test
video, every metric with its reference rows, logged to the run; generated clips are cached.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from asva.config.schema import EvaluateConfig
from asva.config.store import register
from asva.errors import UserError
from asva.evaluation.standalone import run_evaluation

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict[str, float]:
    try:
        job = OmegaConf.to_object(cfg)
        assert isinstance(job, EvaluateConfig)
        return run_evaluation(job)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
