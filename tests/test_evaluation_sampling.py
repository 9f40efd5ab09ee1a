"""Evaluation at scale (asva/evaluation/generation.py, the metric networks' placement), on a tiny model:

- generated clips are saved batch by batch: an evaluation interrupted part-way samples only the
  missing batches when rerun, and ends with exactly the clips of an uninterrupted run;
- two gloo ranks share the batches out (batch b on rank b % 2) and rank 0 gets exactly the clips of
  one process;
- every metric network computes on the device it is moved to: the networks on PyTorch's `meta`
  device, any op that meets an input left on the host fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_parts import FPS, RATE, random_clips, tiny_asva_model, tiny_eval_networks
from torch.utils._python_dispatch import TorchDispatchMode

from asva.config.schema import ExperimentConfig
from asva.evaluation import generation
from asva.evaluation.generation import generate, generated_dir, model_key
from asva.evaluation.sampling import denoise
from asva.models.asva_model import ASVAModel

SIZE, CLIPS, BATCH = 32, 5, 2  # 5 clips in batches of 2: 3 batches, the last one short


def tiny_model() -> ASVAModel:
    model = tiny_asva_model()
    for block in model.audio_cross_attn:  # non-zero adapter outputs, so the audio changes the clips
        torch.nn.init.normal_(block.attn.to_out.weight, std=0.05)
    return model.eval()


def config(cache_dir: Path) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.data.fps, cfg.data.sample_rate = FPS, RATE
    cfg.diffusion.sampling_steps = 2
    cfg.eval.batch_size = BATCH
    cfg.paths.cache_dir = str(cache_dir)
    return cfg


def record_sampled_batches(monkeypatch, sampled: list[int], fail_on: int | None = None) -> None:
    """Record the first clip of every batch `generate` samples; raise (a preemption) on batch `fail_on`."""

    def recording(model, frames, audio, captions, cfg, generator, use_audio=True):
        batch = len(sampled)
        sampled.append(int(generator.initial_seed()) % generation.SEED_STRIDE)
        if batch == fail_on:
            raise KeyboardInterrupt("preempted")
        return denoise(model, frames, audio, captions, cfg, generator, use_audio)

    monkeypatch.setattr(generation, "denoise", recording)


def test_an_interrupted_evaluation_samples_only_the_missing_batches_and_ends_with_the_same_clips(tmp_path, monkeypatch):
    model, clips = tiny_model(), random_clips(CLIPS, SIZE)
    whole_cfg = config(tmp_path / "whole")
    key = model_key(whole_cfg, model)
    whole = generate(model, clips, whole_cfg, key, "uninterrupted")
    assert whole.shape == (CLIPS, 2 * FPS, SIZE, SIZE, 3) and whole.dtype == np.uint8

    cfg = config(tmp_path / "interrupted")
    sampled: list[int] = []
    record_sampled_batches(monkeypatch, sampled, fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        generate(model, clips, cfg, key, "interrupted")
    folder = generated_dir(cfg, model, key, clips, True, 0)
    assert sorted(path.name for path in folder.iterdir()) == ["batch-00000.pt", "batch-00001.pt"]  # saved as made

    bars: list[dict] = []
    progress = generation.progress
    monkeypatch.setattr(generation, "progress", lambda **kwargs: bars.append(kwargs) or progress(**kwargs))
    sampled.clear()
    record_sampled_batches(monkeypatch, sampled)
    resumed = generate(model, clips, cfg, key, "rerun")
    assert sampled == [4]  # the third batch (clips 4..) alone
    assert (bars[-1]["initial"], bars[-1]["total"]) == (2, 3)  # the bar starts at the resumed count
    np.testing.assert_array_equal(resumed, whole)

    sampled.clear()
    assert np.array_equal(generate(model, clips, cfg, key, "regenerate", regenerate=True), whole)
    assert sampled == [0, 2, 4]

    # Another model (one adapter weight changed) has clips of its own; so has the null-audio pass.
    with torch.no_grad():
        next(iter(model.audio_cross_attn)).attn.to_out.weight[0, 0] += 1.0
    assert model_key(cfg, model) != key
    assert generated_dir(cfg, model, key, clips, False, 0) != folder


def _sample_on_rank(rank: int, world_size: int, init_file: str, cache_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        sampled: list[int] = []
        record_sampled_batches(pytest.MonkeyPatch(), sampled)
        model, cfg = tiny_model(), config(Path(cache_dir))
        frames = generate(model, random_clips(CLIPS, SIZE), cfg, model_key(cfg, model), "sharded")
        (Path(out_dir) / f"rank-{rank}.json").write_text(json.dumps(sampled))
        if rank == 0:
            np.save(Path(out_dir) / "frames.npy", frames)
        else:
            assert frames is None  # rank 0 alone gathers and scores
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_the_batches_out_and_gather_the_clips_of_one_process(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(_sample_on_rank, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "two"), str(out)), nprocs=2)
    assert json.loads((out / "rank-0.json").read_text()) == [0, 4]  # batches 0 and 2 (their first clips)
    assert json.loads((out / "rank-1.json").read_text()) == [2]  # batch 1

    model, cfg = tiny_model(), config(tmp_path / "one")
    one = generate(model, random_clips(CLIPS, SIZE), cfg, model_key(cfg, model), "one process")
    np.testing.assert_array_equal(np.load(out / "frames.npy"), one)


class HostCopiesOfMeta(TorchDispatchMode):
    """Lets the networks run on `meta` and their outputs come back to the host: a copy of a meta
    tensor to the CPU gives random numbers of its shape (meta tensors hold no data)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = args[0] if args else None
        if (
            func is torch.ops.aten._to_copy.default
            and isinstance(source, torch.Tensor)
            and source.device.type == "meta"
        ):
            target = kwargs.get("device")
            if target is not None and torch.device(target).type == "cpu":
                return torch.rand(source.shape, generator=torch.Generator().manual_seed(0)).to(
                    kwargs.get("dtype") or source.dtype
                )
        return func(*args, **kwargs)


def test_every_metric_network_computes_on_the_device_it_is_moved_to():
    from asva.evaluation.embedders import audio_frame_similarity
    from asva.evaluation.fid import FIDInceptionFeatures, fid_inception_architecture, frame_features
    from asva.evaluation.paper_metrics import paper_scores

    meta = torch.device("meta")
    nets = tiny_eval_networks().to(meta)
    assert {p.device.type for p in nets.sync.parameters()} == {"meta"} and nets.device == meta
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(5, 12, 32, 32, 3), dtype=np.uint8)  # on the host, as the clips are
    generated = rng.integers(0, 256, size=(5, 12, 32, 32, 3), dtype=np.uint8)
    audio = torch.randn(5, 198, 128)
    with HostCopiesOfMeta():
        scores = paper_scores(nets, real, audio, ["drum"] * 5, generated, fps=6, batch_size=2)
        fid_net = FIDInceptionFeatures(fid_inception_architecture()).to(meta)
        assert frame_features(fid_net, real[:2], batch_size=4).shape == (24, 2048)
        # The check can fail: frames handed to a network on another device than theirs.
        with pytest.raises(RuntimeError, match="device"):
            audio_frame_similarity(nets.audio_vision, audio, real, 2, torch.device("cpu"))
    assert {"fvd_embedded", "ia_embedded", "it_embedded"} <= set(scores.metrics)
