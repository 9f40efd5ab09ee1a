"""Stage 1, trained once per pretraining configuration and shared by every finetuning job.

The cache key hashes everything the pretrained adapters depend on (model, audio taps, window,
pretraining recipe, curation, the pool itself), never the finetuning settings or the job's seed,
so a K-shot sweep trains stage 1 once and every job that needs it loads the same weights.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from asva.config.schema import ExperimentConfig
from asva.data.curation import curate
from asva.data.dataset import ClipSet
from asva.models.asva_model import ASVAModel
from asva.training.adapters import train_adapter_stage
from asva.training.checkpoint import build_once
from asva.config.hashing import stable_hash
from asva.training.components import clipset_fingerprint

PRETRAIN_SEED = 0


def pretrain_key(cfg: ExperimentConfig, pool: ClipSet) -> str:
    return stable_hash(
        cfg.audio_layers,
        cfg.window_radius,
        cfg.curation,
        asdict(cfg.train.pretrain),
        asdict(cfg.model),
        asdict(cfg.audio),
        asdict(cfg.diffusion),
        cfg.data.fps,
        clipset_fingerprint(pool),
        "v1",
    )


def pretrained_adapters(
    cfg: ExperimentConfig,
    model: ASVAModel,
    pool: ClipSet,
    cache_dir: Path,
    on_trained: Callable[[str, list[float], dict[str, str], int], None],
) -> tuple[str, dict[str, torch.Tensor]]:
    """(key, adapter weights) of stage 1; trains it (and calls on_trained) only if not cached."""
    key = pretrain_key(cfg, pool)
    folder = cache_dir / "pretrain" / key

    def build() -> dict:
        curation = curate(pool, cfg.curation)
        kept = pool.subset(curation.kept)
        model.reset_adapters(PRETRAIN_SEED)
        losses = train_adapter_stage(
            model,
            kept,
            model.encode_audio(kept.fbank),
            cfg.train.pretrain,
            cfg.diffusion,
            PRETRAIN_SEED,
            desc=f"stage 1: pretraining adapters on {len(kept)} pool clips (trained once)",
            checkpoint_path=folder / "progress.pt",
        )
        on_trained(key, losses, curation.rejected, len(kept))
        return {"weights": model.adapter_state_dict(), "losses": losses}

    return key, build_once(folder / "adapters.pt", build)["weights"]
