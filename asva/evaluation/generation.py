"""The one sampler of every evaluation: clips generated in batches, saved as they are made, shared out over ranks.

Jobs (asva/evaluation/evaluate.py), `sweeps/evaluate.py` (asva/evaluation/standalone.py) and the
open-class clips all sample through `generate`. The clips go in batches of `eval.batch_size`, and
batch b starts from noise seeded by (seed, its first clip) alone, so a clip does not depend on how
many ranks sample, nor on which batches an earlier attempt finished.

Each batch is written (atomically) as soon as it is sampled, to
`paths.cache_dir/generated/<key>/batch-<b>.pt`. The key names the model (the settings that build it
and its adapter weights: `model_key`), the clips, the diffusion settings, the batch size, the seed,
the pass (with or without audio, its noise stream) and the device kind and precision. A requeued or
rerun evaluation loads the finished batches and samples only the others; `sweeps/evaluate.py` on a
job's run finds the clips the job generated and only scores them again.

Under a multi-rank job (torchrun, a multi-task SLURM step; asva/distributed.py) rank r samples
batches r, r + W, r + 2W, ... on its own device; after a barrier, rank 0 reads every batch back
and alone scores them. The batch files are the gather, so ranks on several nodes need
`paths.cache_dir` on a shared file system, as they do for the frozen parts.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from asva import distributed
from asva.config.hashing import stable_hash
from asva.config.schema import ExperimentConfig
from asva.data.dataset import ClipSet
from asva.evaluation.sampling import denoise, latents_to_frames
from asva.files import load_torch, save_torch
from asva.models.asva_model import ASVAModel
from asva.progress import progress

log = logging.getLogger(__name__)

GENERATED_DIR = "generated"
# Part of the generated clips' cache key: bump it when the same settings would sample other clips.
GENERATED_CACHE_VERSION = "v2"
SEED_STRIDE = 1_000_003  # the noise of batch b: seed * SEED_STRIDE + its stream's offset + its first clip
# Settings that do not change a model's clips: where files live, how clips are scored, the run's
# bookkeeping, and the training recipe (its outcome, the adapter weights, is hashed instead).
NOT_IN_MODEL_KEY = ("paths", "eval", "tracking", "study", "train")


def model_key(cfg: ExperimentConfig, model: ASVAModel) -> str:
    """What fixes the clips a model generates: the settings that build it and its adapter weights."""
    settings = {name: value for name, value in asdict(cfg).items() if name not in NOT_IN_MODEL_KEY}
    weights = hashlib.sha256()
    for name, tensor in sorted(model.adapter_state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return stable_hash(settings, weights.hexdigest())


def generated_dir(
    cfg: ExperimentConfig, model: ASVAModel, key: str, clips: ClipSet, use_audio: bool, noise_offset: int
) -> Path:
    """The folder of one pass's batch files."""
    placement = model.placement
    digest = stable_hash(
        key,
        clips.video_ids,
        asdict(cfg.diffusion),
        cfg.eval.batch_size,
        cfg.seed,
        use_audio,
        noise_offset,
        placement.device.type,
        str(placement.compute_dtype),
        GENERATED_CACHE_VERSION,
    )
    return Path(cfg.paths.cache_dir) / GENERATED_DIR / digest


def batch_path(folder: Path, batch: int) -> Path:
    return folder / f"batch-{batch:05d}.pt"


@torch.no_grad()
def generate(
    model: ASVAModel,
    clips: ClipSet,
    cfg: ExperimentConfig,
    key: str,
    desc: str,
    use_audio: bool = True,
    noise_offset: int = 0,
    regenerate: bool = False,
) -> np.ndarray | None:
    """Animate every clip of `clips` ([N, T, H, W, 3] uint8); on ranks other than 0, None.

    `key` is the model's `model_key`; `use_audio=False` samples with the null audio; `noise_offset`
    gives a pass a noise stream of its own; `regenerate` samples again over the saved batches.
    Every rank must call it, in the same order: it ends at a barrier.
    """
    folder = generated_dir(cfg, model, key, clips, use_audio, noise_offset)
    size = cfg.eval.batch_size
    batches = range((len(clips) + size - 1) // size)
    world = distributed.current()
    mine = batches[world.rank :: world.size]
    todo = [b for b in mine if regenerate or not batch_path(folder, b).is_file()]
    if len(todo) < len(mine):
        log.info("%s: %d of %d batches already sampled, in %s", desc, len(mine) - len(todo), len(mine), folder)
    if world.size > 1:
        desc = f"{desc} (rank {world.rank} of {world.size})"
    captions = [label.replace("_", " ") for label in clips.labels]
    with progress(desc=desc, total=len(mine), initial=len(mine) - len(todo), unit="batch") as bar:
        for batch in todo:
            start = batch * size
            index = torch.arange(start, min(start + size, len(clips)))
            features = model.encode_audio(clips.fbank[index], clips.audio[index], cfg.data.sample_rate)
            generator = torch.Generator().manual_seed(cfg.seed * SEED_STRIDE + noise_offset + start)
            latents = denoise(
                model, clips.frames[index], features, [captions[i] for i in index], cfg.diffusion, generator, use_audio
            )
            frames = latents_to_frames(model, latents)
            save_torch(batch_path(folder, batch), {"frames": frames})
            bar.update(1)
    distributed.barrier()  # every rank's batches are on disk
    if not world.is_main:
        return None
    return torch.cat([load_torch(batch_path(folder, b))["frames"] for b in batches]).numpy()
