"""Frozen latents cached once (sweeps/prepare.py, asva/data/latent_cache.py) and read by training."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_OVERRIDES, job_env, path_overrides
from test_model_and_training import make_model
from training_videos import ramp_tone

from asva.config.schema import DataConfig, DiffusionConfig, ModelConfig, StageConfig
from asva.data import latent_cache
from asva.data.dataset import load_split
from asva.data.latent_cache import cache_folder, first_stage_key, open_cache
from asva.data.media import write_video
from asva.errors import DataError
from asva.models.asva_model import ASVAModel
from asva.models.imagebind import ImageBindAudio, TrunkSpec
from asva.models.paper_model import build_dynamicrafter_base
from asva.models.placement import CPU_FP32
from asva.prepare_job import prepare_shard
from asva.training.adapters import train_adapter_stage

SOURCE_FPS = 12
DECODES = ("memory", "stream")
STAGE = StageConfig(lr=3e-3, batch_size=2, steps=4, checkpoint_every=100)


def textured_frames(seconds: float, seed: int) -> np.ndarray:
    """A fixed random texture whose brightness rises with time: every frame differs from the next."""
    texture = np.random.default_rng(seed).integers(0, 60, (48, 64, 3))
    steps = 10 * np.arange(round(seconds * SOURCE_FPS)) / SOURCE_FPS
    return np.clip(texture[None] + steps[:, None, None, None], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three 6-s training videos and one 2-s one (AVSync15 layout)."""
    root = tmp_path_factory.mktemp("latents")
    train = ["dog/v0.mp4", "dog/v1.mp4", "dog/v2.mp4", "cat/short.mp4"]
    (root / "classes.txt").write_text("dog\ncat\n")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    for seed, entry in enumerate(train):
        seconds = 2.0 if "short" in entry else 6.0
        write_video(root / "videos" / entry, textured_frames(seconds, seed), SOURCE_FPS, ramp_tone(seconds))
    return root


def data(decode: str, root: Path) -> DataConfig:
    return DataConfig(name="avsync15", root=str(root), frame_size=16, decode=decode, num_workers=0)


@pytest.fixture(scope="module")
def splits(root):
    return {decode: load_split(root, "train", data(decode, root), root / "decoded") for decode in DECODES}


def dynamicrafter_model() -> ASVAModel:
    """The paper model's classes (DynamiCrafter base, its VAE, ImageBind audio) at test width."""
    torch.manual_seed(0)
    base, _ = build_dynamicrafter_base("256", 3, "tiny")
    encoder = ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=4, out_dim=16)).eval()
    return ASVAModel(base, {"a": encoder}, [("a", 11)], 1.5, 6, ModelConfig(context_dim=32, heads=4), 198)


MODELS = {"tiny": make_model, "dynamicrafter": dynamicrafter_model}


def prepare(clips, model, cache_dir, dtype="float32", shard=0, shards=1) -> dict:
    return prepare_shard(clips, model.base.first_stage, CPU_FP32, cache_dir, shard, shards, dtype, 0, "train")


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("decode", DECODES)
def test_cached_latents_are_the_first_stage_latents_of_the_drawn_clip_bit_for_bit(splits, tmp_path, decode, model_name):
    clips, model = splits[decode], MODELS[model_name]()
    for dtype in ("float32", "float16"):
        counts = prepare(clips, model, tmp_path / dtype, dtype)
        assert counts["videos"] == 4 and counts["frames"] == 3 * 36 + 12  # every frame at 6 FPS
        cached, _ = open_cache(tmp_path / dtype, clips, model.base.first_stage, clip_frames=12)
        assert cached.rows_found == 4
        for row in range(len(clips)):
            for fraction in (0.0, 0.37, 0.999):
                latents = cached.clip(row, clips.windows.start_seconds(row, fraction))
                frames, _ = clips.windows.clip(row, fraction)
                with torch.no_grad():
                    expected = model.base.encode_video(frames[None])[0]
                assert latents.shape == expected.shape and latents.dtype == getattr(torch, dtype)
                assert torch.equal(latents, expected.to(latents.dtype)), (row, fraction)


def test_a_start_off_the_cached_grid_or_beyond_the_video_is_not_served(splits, tmp_path):
    clips, model = splits["stream"], make_model()
    prepare(clips, model, tmp_path)
    cached, _ = open_cache(tmp_path, clips, model.base.first_stage, clip_frames=12)
    start = clips.windows.start_seconds(0, 0.5)
    assert cached.clip(0, start) is not None
    assert cached.clip(0, start + 0.05) is None  # between two frames of the 6-FPS grid
    assert cached.clip(0, 6.0 - 1 / 6) is None  # fewer than 12 frames left


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("decode", DECODES)
def test_a_stage_trains_exactly_as_on_the_fly_with_the_cache(root, splits, tmp_path, decode, model_name, caplog):
    clips = splits[decode]
    prepare(clips, MODELS[model_name](), tmp_path / "float32")
    prepare(clips, MODELS[model_name](), tmp_path / "float16", "float16")

    def train(cache_dir=None) -> tuple[list[float], dict, list[int]]:
        model, encoded = MODELS[model_name](), []
        encode = model.base.encode_video
        model.base.encode_video = lambda frames: encoded.append(frames.shape[0]) or encode(frames)
        losses = train_adapter_stage(
            model, clips, STAGE, DiffusionConfig(), 0, "test", data=data(decode, root), cache_dir=cache_dir
        )
        return losses, model.adapter_state_dict(), encoded

    on_the_fly, weights, encoded = train()
    assert len(encoded) == STAGE.steps  # one batch of clips encoded per step
    with caplog.at_level(logging.INFO, logger="asva.training.adapters"):
        cached, cached_weights, cached_encoded = train(tmp_path / "float32")
    assert cached_encoded == []  # the first stage never ran on a clip
    assert "latents of 4 of 4 videos read from the cache" in caplog.text
    assert cached == on_the_fly  # the same draws, latents, noise: the same loss to the last bit
    assert all(torch.equal(cached_weights[k], weights[k]) for k in weights)
    half, _, _ = train(tmp_path / "float16")
    np.testing.assert_allclose(half, on_the_fly, rtol=2e-3)  # fp16 rounding of the latents only


def test_a_half_prepared_cache_serves_its_shards_and_resumes(root, splits, tmp_path, monkeypatch, caplog):
    clips, model = splits["stream"], make_model()
    stage = model.base.first_stage
    folder = cache_folder(tmp_path, clips.source, first_stage_key(stage))
    first = prepare(clips, model, tmp_path, shard=0, shards=2)
    assert first["videos"] == 2

    appended = []
    original = latent_cache.NpyAppender.append

    def dies_after_one_video(self, block):
        if appended:
            raise KeyboardInterrupt  # the shard's process is killed
        appended.append(len(block))
        return original(self, block)

    monkeypatch.setattr(latent_cache.NpyAppender, "append", dies_after_one_video)
    with pytest.raises(KeyboardInterrupt):
        prepare(clips, model, tmp_path, shard=1, shards=2)
    monkeypatch.undo()
    assert list(folder.glob("shard-00001-of-00002.npy.*.partial"))
    assert not (folder / "shard-00001-of-00002.json").exists()

    cached, note = open_cache(tmp_path, clips, stage, clip_frames=12)
    assert cached.rows_found == 2 and "1 of 2 shards prepared" in note
    # Half the videos from the cache, half encoded on the fly (mixed batches): still the loss on the fly.
    stream = data("stream", root)
    losses = train_adapter_stage(make_model(), clips, STAGE, DiffusionConfig(), 0, "t", data=stream, cache_dir=tmp_path)
    assert losses == train_adapter_stage(make_model(), clips, STAGE, DiffusionConfig(), 0, "t", data=stream)

    done = (folder / "shard-00000-of-00002.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="asva.prepare_job"):
        assert prepare(clips, model, tmp_path, shard=0, shards=2) == first  # done: skipped
    assert "shard 0 of 2 is already done" in caplog.text
    assert (folder / "shard-00000-of-00002.json").stat().st_mtime_ns == done
    second = prepare(clips, model, tmp_path, shard=1, shards=2)
    assert second["videos"] == 2 and not list(folder.glob("*.partial"))
    cached, note = open_cache(tmp_path, clips, stage, clip_frames=12)
    assert cached.rows_found == 4 and "2 of 2 shards prepared" in note
    whole = tmp_path / "whole"
    prepare(clips, model, whole)
    single, _ = open_cache(whole, clips, stage, clip_frames=12)
    for row in range(4):
        start = clips.windows.start_seconds(row, 0.6)
        assert torch.equal(cached.clip(row, start), single.clip(row, start))
    shard_file = np.load(folder / "shard-00001-of-00002.npy", mmap_mode="r")
    assert shard_file.shape == (second["frames"], 16, 2, 2) and shard_file.dtype == np.float32

    with pytest.raises(DataError, match=r"prepared with other settings \(dtype differ from those in "):
        prepare(clips, model, tmp_path, "float16", shard=0, shards=2)


def test_another_first_stage_or_another_set_finds_no_cache(splits, tmp_path):
    clips, model = splits["memory"], make_model()
    prepare(clips, model, tmp_path)
    other = make_model()
    with torch.no_grad():
        other.base.first_stage.scale.mul_(2)  # other weights: other latents
    assert open_cache(tmp_path, clips, other.base.first_stage, 12)[0] is None
    assert open_cache(tmp_path, splits["stream"], model.base.first_stage, 12)[0] is None
    subset = clips.subset([3, 1])  # a K-shot subset of the set: its rows found by video
    cached, _ = open_cache(tmp_path, subset, model.base.first_stage, 12)
    assert cached.rows_found == 2


def test_prepare_through_its_entry_point_then_a_job_finds_the_cache(tmp_path, tiny_job, caplog):
    job = [
        "data.synthetic.video_seconds=3",
        "pretrain=true",
        "study=latent_cache",
        "eval.paper_metrics=false",
        "eval.null_audio_control=false",
        "eval.openclass=false",
    ]
    # Two shards, one after another in one multirun (a SLURM array with hydra/launcher=slurm_*).
    overrides = [*TINY_OVERRIDES, *path_overrides(tmp_path), *job, "shards=2", "shard=range(0,2)"]
    command = [sys.executable, str(REPO / "sweeps" / "prepare.py"), "-m", *overrides]
    result = subprocess.run(
        command, check=False, cwd=tmp_path, env=job_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted((tmp_path / "cache" / "latents").iterdir())
    assert len(folders) == 2  # the training split and the pool
    for folder in folders:
        settings = json.loads((folder / "settings.json").read_text())
        assert settings["shards"] == 2 and settings["dtype"] == "float16" and settings["set"] in ("train", "pool")
        written = {path.name for path in folder.glob("shard-*")}
        assert written >= {"shard-00000-of-00002.json", "shard-00001-of-00002.npy"}

    with caplog.at_level(logging.INFO, logger="asva.training.adapters"):
        tiny_job(*job)  # in the same cache folder
    reads = [r.getMessage() for r in caplog.records if "read from the cache" in r.getMessage()]
    assert len(reads) == 2 and all(" of " in line and "2 of 2 shards prepared, float16" in line for line in reads)
