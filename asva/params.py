"""`python -m asva.params [overrides]`: parameter counts of the configured model, as one JSON line.

Composes the same Hydra config as the sweeps (sweeps/conf/base.yaml, e.g. `model=dynamicrafter_6fps
audio_layers=ib3-7-11+beats3-7-11`) and builds the model on the meta device: no weights are read
and no memory is allocated, so the full-size model is counted on any machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from asva.config.build import build_config
from asva.config.schema import ExperimentConfig
from asva.config.store import register
from asva.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "sweeps" / "conf"


def load_config(overrides: list[str]) -> ExperimentConfig:
    register()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="base", overrides=overrides)
    experiment = build_config(cfg)
    assert isinstance(experiment, ExperimentConfig)
    return experiment


def paper_counts(cfg: ExperimentConfig) -> dict:
    from asva.models.paper_model import VARIANTS, PaperModelSpec, parameter_counts
    from asva.training.components import taps

    spec = PaperModelSpec(
        variant=cfg.model.variant,
        unet=VARIANTS[cfg.model.variant]["unet"],
        taps=taps(cfg),
        context_dim=cfg.model.context_dim,
    )
    return parameter_counts(spec)


def tiny_counts(cfg: ExperimentConfig) -> dict:
    from asva.models.asva_model import ASVAModel, ImageToVideoBase
    from asva.models.audio_encoders import TinyAudioEncoder
    from asva.training.components import taps

    with torch.device("meta"):
        base = ImageToVideoBase(cfg.model)
        encoders = {
            name: TinyAudioEncoder(enc.kind, enc.num_layers, enc.dim, enc.token_seconds, num_classes=1)
            for name, enc in cfg.audio.encoders.items()
        }
        model = ASVAModel(base, encoders, taps(cfg), cfg.window_radius, cfg.data.fps, cfg.model, fbank_frames=1)
    trainable = sum(p.numel() for p in model.adapter_parameters())
    return {
        "trainable": trainable,
        "unet": sum(p.numel() for p in base.unet.parameters()) - trainable,
        "total": sum(p.numel() for p in model.parameters()),
    }


def counts(cfg: ExperimentConfig) -> dict:
    result = paper_counts(cfg) if cfg.model.name == "dynamicrafter" else tiny_counts(cfg)
    result = {"model": cfg.model.name, "variant": cfg.model.variant, "audio_layers": cfg.audio_layers, **result}
    result["trainable_share_of_total"] = round(result["trainable"] / result["total"], 5)
    result["trainable_share_of_unet"] = round(result["trainable"] / result["unet"], 5)
    return result


def main(argv: list[str]) -> int:
    try:
        print(json.dumps(counts(load_config(argv))))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
