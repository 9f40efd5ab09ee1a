"""Hydra entry point: `python sweeps/train_sync_classifier.py [output=PATH] [classifier.kind=avsyncd] [data=avsync15 data.root=...]`.

The config is sweeps/conf/train_sync_classifier.yaml; the checkpoint it writes is loaded by
`eval.networks.sync_classifier.kind=<the same kind> eval.networks.sync_classifier.checkpoint=PATH`
(and by sweeps/evaluate.py).
"""

import hydra
from omegaconf import DictConfig

from asva import cli
from asva.config.commands import TrainSyncClassifierConfig
from asva.config.store import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="train_sync_classifier")
def main(cfg: DictConfig) -> dict[str, float]:
    # Imported when the job runs, not on import (see asva/cli.py run).
    from asva.evaluation.sync_training import run_sync_classifier_training

    return cli.run_command(cfg, TrainSyncClassifierConfig, run_sync_classifier_training)


if __name__ == "__main__":
    main()
