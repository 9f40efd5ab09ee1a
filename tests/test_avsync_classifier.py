"""The papers' synchronization classifier (AVSyncD's): release layout, strict loading, inputs, its recipe, names."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from asva.config.commands import TrainSyncClassifierConfig
from asva.config.schema import AVSyncDClassifierConfig, ExperimentConfig
from asva.data.audio import fbank
from asva.data.windows import VideoWindows
from asva.errors import DataError
from asva.evaluation.avsync_classifier import (
    RELEASE_WIDTHS,
    AVSyncDClassifier,
    load_avsyncd,
    mel_spectrogram,
    video_input,
)
from asva.evaluation.avsync_training import Spans, both_directions_loss
from asva.evaluation.networks import _sync, sync_suffix
from asva.evaluation.sync_classifier import load_sync_classifier, sync_scores
from asva.models.imagebind import FBANK_MEAN, FBANK_STD, VISION_MEAN, VISION_STD, waveform_fbank

LAYOUTS = Path(__file__).parent / "checkpoint_layouts"
sys.path.insert(0, str(LAYOUTS))
import avsyncd_listing  # noqa: E402  (the release's layout, written without asva)

TINY_WIDTHS = (4, 8, 8, 16)


def release_state(widths=RELEASE_WIDTHS, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)

    def tensor(key: str, shape: list[int]) -> torch.Tensor:
        if key.endswith("num_batches_tracked"):
            return torch.tensor(7)
        if key.endswith("running_var"):
            return torch.rand(shape, generator=generator) + 0.5
        return torch.randn(shape, generator=generator) * 0.1

    return {
        part: {k: tensor(k, s) for k, s in keys.items()}
        for part, keys in avsyncd_listing.release_listing(widths).items()
    }


def write_release(root: Path, state: dict[str, dict[str, torch.Tensor]], safetensors_part: str | None = None) -> Path:
    """A release-layout folder: modules/<part>/config.json + diffusion_pytorch_model.bin (or .safetensors)."""
    modules = root / "checkpoint-40000" / "modules"
    for part, tensors in state.items():
        (modules / part).mkdir(parents=True)
        config = dict(avsyncd_listing.CONFIGS[part])
        if part == "head":
            config["dim"] = tensors["fc.0.weight"].shape[0]
        (modules / part / "config.json").write_text(json.dumps(config))
        if part == safetensors_part:
            from safetensors.torch import save_file

            save_file(tensors, modules / part / "diffusion_pytorch_model.safetensors")
        else:
            torch.save(tensors, modules / part / "diffusion_pytorch_model.bin")
    return modules


def test_committed_listing_is_the_generators_and_is_this_module_at_release_size():
    committed = json.loads((LAYOUTS / "avsyncd_classifier.json").read_text())
    assert committed == json.loads(json.dumps(avsyncd_listing.release_listing()))
    with torch.device("meta"):
        ours = AVSyncDClassifier()
    mapped = {f"{part}.{key}": shape for part, keys in committed.items() for key, shape in keys.items()}
    assert {key: list(value.shape) for key, value in ours.state_dict().items()} == mapped
    counts = {part: sum(p.numel() for p in getattr(ours, part).parameters()) for part in avsyncd_listing.FOLDERS}
    assert counts == {"audio_encoder": 4_725_696, "video_encoder": 15_379_136, "head": 656_385}  # 20.76M weights


def test_the_release_at_full_size_loads_as_the_papers_classifier(tmp_path):
    state = {
        part: {k: torch.zeros(s, dtype=torch.long if k.endswith("tracked") else torch.float32) for k, s in keys.items()}
        for part, keys in avsyncd_listing.release_listing().items()
    }
    loaded = load_avsyncd(write_release(tmp_path, state).parent)  # the checkpoint folder above modules/ also works
    assert loaded.papers and loaded.dataset == "VGGSS" and loaded.classifier.widths == RELEASE_WIDTHS


def test_a_release_folder_loads_every_key_strictly_and_scores(tmp_path):
    state = release_state(TINY_WIDTHS)
    modules = write_release(tmp_path, state, safetensors_part="video_encoder")
    loaded = load_avsyncd(modules)
    assert not loaded.papers  # the release's layout, not its widths
    ours = loaded.classifier.state_dict()
    for part, tensors in state.items():
        for key, value in tensors.items():
            assert torch.equal(ours[f"{part}.{key}"], value), key
    classifier = loaded.classifier
    mel, video = torch.randn(3, 1, 128, 204), torch.randn(3, 3, 12, 32, 32)
    assert classifier(mel, video).shape == (3,)
    pairs = classifier.pair_scores(classifier.audio_encoder(mel)[None], classifier.video_encoder(video)[None])[0]
    assert pairs.shape == (3, 3)
    assert torch.allclose(pairs.diagonal(), classifier(mel, video), atol=1e-5)
    assert torch.allclose(pairs[0, 2], classifier(mel[:1], video[2:]), atol=1e-5)
    frames = np.random.default_rng(0).integers(0, 256, (3, 12, 40, 40, 3), dtype=np.uint8)
    scores = sync_scores(classifier, torch.randn(3, 198, 128), frames)
    assert scores.shape == (3,) and np.isfinite(scores).all()


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda s: s["video_encoder"].__setitem__(
                "conv2x.0.spatial_conv1.weight", s["video_encoder"].pop("conv2x.0.spt_conv1.weight")
            ),
            (
                r"missing: video_encoder\.conv2x\.0\.spt_conv1\.weight.*"
                r"unexpected: video_encoder\.conv2x\.0\.spatial_conv1\.weight "
                r"\(.*video_encoder/diffusion_pytorch_model\.bin\)"
            ),
        ),
        (
            lambda s: s["audio_encoder"].pop("block3.bn2.running_var"),
            r"\(missing: audio_encoder\.block3\.bn2\.running_var\)",
        ),
        (
            lambda s: s["head"].__setitem__("fc.3.weight", torch.zeros(3, 16)),
            r"wrong shape: head\.fc\.3\.weight .* \[3, 16\] != \[8, 16\]",
        ),
        (lambda s: s["head"].__setitem__("ema.decay", torch.tensor(0.9)), r"unexpected: head\.ema\.decay"),
    ],
)
def test_a_renamed_missing_misshaped_or_unknown_key_fails_naming_it(tmp_path, damage, message):
    state = release_state(TINY_WIDTHS)
    damage(state)
    with pytest.raises(DataError, match=message):
        load_avsyncd(write_release(tmp_path, state))


def test_missing_counters_load_and_a_wrong_folder_fails_clearly(tmp_path):
    state = release_state(TINY_WIDTHS)
    state["audio_encoder"] = {k: v for k, v in state["audio_encoder"].items() if not k.endswith("num_batches_tracked")}
    load_avsyncd(write_release(tmp_path / "counters", state))  # counters hold no weights
    modules = write_release(tmp_path / "class", release_state(TINY_WIDTHS))
    (modules / "head" / "config.json").write_text(json.dumps({"_class_name": "UNet3DConditionModel"}))
    with pytest.raises(DataError, match="head/config.json names 'UNet3DConditionModel', expected 'FCHead'"):
        load_avsyncd(modules)
    (modules / "video_encoder" / "diffusion_pytorch_model.bin").unlink()
    with pytest.raises(DataError, match="video_encoder holds neither diffusion_pytorch_model.safetensors nor .*bin"):
        load_avsyncd(modules)
    with pytest.raises(DataError, match="audio_encoder/config.json missing"):
        load_avsyncd(tmp_path)


def test_inputs_are_imagebinds_spectrogram_and_clip_normalised_frames():
    audio = torch.randn(2, 32000) * 0.1
    mel = mel_spectrogram(fbank(audio))
    raw = waveform_fbank(audio)  # ImageBind's front-end: 198 frames, zero-padded to 204 before normalising
    expected = ((torch.nn.functional.pad(raw, (0, 0, 0, 6)) - FBANK_MEAN) / FBANK_STD).transpose(1, 2)[:, None]
    assert mel.shape == (2, 1, 128, 204) and torch.allclose(mel, expected, atol=1e-4)
    frames = torch.full((2, 12, 32, 32, 3), 200, dtype=torch.uint8)
    video = video_input(frames, 224)
    assert video.shape == (2, 3, 12, 224, 224)
    for channel in range(3):
        assert torch.allclose(
            video[:, channel], torch.tensor((200 / 255 - VISION_MEAN[channel]) / VISION_STD[channel]), atol=1e-4
        )


def test_training_clips_are_shifted_in_seconds_with_nearest_frames_and_exact_audio():
    fps, rate, seconds = 12, 16000, 6
    frames = torch.arange(fps * seconds, dtype=torch.uint8)[:, None, None, None].expand(-1, 2, 2, 3).contiguous()
    audio = torch.arange(rate * seconds, dtype=torch.float32)
    windows = VideoWindows.from_videos([frames], [audio], [0.0], 24, fps, rate)
    spans = Spans.at_least(windows, 6.0)
    assert len(spans) == 1 and spans.seconds(0) == pytest.approx(6.0)
    assert len(Spans.at_least(windows, 6.5)) == 0  # too short for 21 clips 0.25 s apart: left out
    starts = torch.tensor([0.0, 0.2, 0.4, 4.0], dtype=torch.float64)
    clip_frames, clip_audio = spans.clips(0, starts)
    assert clip_frames.shape == (4, 12, 2, 2, 3) and clip_audio.shape == (4, 32000)
    expected = [[round((s + i / 6) * fps + 1e-9) for i in range(12)] for s in (0.0, 0.2, 0.4, 4.0)]
    assert clip_frames[:, :, 0, 0, 0].tolist() == expected  # 0.2 s = 2.4 frames: frame 2 is nearest
    assert clip_audio[:, 0].tolist() == [0.0, 3200.0, 6400.0, 64000.0]


def test_the_loss_goes_both_directions():
    count = 3
    diagonal = torch.eye(count)[None] * 50
    assert both_directions_loss(diagonal, 0.1) < 1e-6
    assert both_directions_loss(torch.zeros(2, count, count), 0.1) == pytest.approx(math.log(count))
    # Every audio prefers video 0: A2V is right for audio 0 only; V2A for every video is uncertain.
    logits = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    a2v = torch.nn.functional.cross_entropy(logits[0] / 0.1, torch.arange(3))
    v2a = torch.nn.functional.cross_entropy(logits[0].T / 0.1, torch.arange(3))
    assert both_directions_loss(logits, 0.1) == pytest.approx(float((a2v + v2a) / 2))
    assert both_directions_loss(logits.transpose(1, 2), 0.1) == pytest.approx(float(both_directions_loss(logits, 0.1)))


def test_reserved_names_only_for_the_papers_classifier_on_real_data(tmp_path):
    assert sync_suffix(real_data=True, papers_classifier=True, trained_on_real_data=True) == ""
    assert sync_suffix(real_data=True, papers_classifier=False, trained_on_real_data=True) == "_asva"
    assert sync_suffix(real_data=True, papers_classifier=False, trained_on_real_data=False) == "_embedded"
    assert sync_suffix(real_data=False, papers_classifier=True, trained_on_real_data=True) == "_embedded"
    cfg = ExperimentConfig()
    cfg.data.name = "avsync15"
    cfg.eval.networks.sync_classifier.kind = "avsyncd"
    cfg.eval.networks.sync_classifier.checkpoint = str(write_release(tmp_path, release_state(TINY_WIDTHS)))
    classifier, suffix = _sync(None, cfg, tmp_path)
    assert isinstance(classifier, AVSyncDClassifier) and suffix == "_asva"  # release layout, not its widths


def test_the_small_classifier_is_listed_by_the_tables():
    from analysis.metrics import by_family, metric_info

    families = by_family(["relsync_embedded", "relsync_asva", "alignsync_asva", "relsync", "ia"])
    assert families[""] == ["ia", "relsync", "relsync_embedded"]
    assert sorted(families["other"]) == ["alignsync_asva", "relsync_asva"]
    assert metric_info("relsync_asva").higher_is_better is True


def test_training_script_trains_the_papers_architecture_with_its_recipe_at_tiny_size(session_store, workdir, tmp_path):
    from test_metrics_standalone import tiny

    from asva.evaluation.sync_training import run_sync_classifier_training

    output = tmp_path / "avsyncd.pt"
    cfg = tiny(
        TrainSyncClassifierConfig,
        workdir,
        f"output={output}",
        "classifier.kind=avsyncd",
        "classifier.avsyncd.widths=[4,8,8,16]",
        "classifier.avsyncd.image_size=32",
        "classifier.avsyncd.steps=2",
        "classifier.avsyncd.batch_size=2",
        "classifier.avsyncd.warmup_steps=1",
        "data.synthetic.video_seconds=6",
        "data.synthetic.train_per_class=2",
        "data.synthetic.test_per_class=1",
        "data.synthetic.pool_per_class=1",
        "data.synthetic.openclass_per_class=0",
    )
    assert (
        cfg.classifier.avsyncd.num_clips,
        cfg.classifier.avsyncd.shift_seconds,
        cfg.classifier.avsyncd.temperature,
    ) == (21, 0.2, 0.1)
    metrics = run_sync_classifier_training(cfg)
    assert metrics["sync_chance"] == pytest.approx(1 / 21) and metrics["num_test_videos"] == 4
    assert 0 <= metrics["sync_test_accuracy_a2v"] <= 1 and 0 <= metrics["sync_test_accuracy_v2a"] <= 1
    loaded = load_avsyncd(output)
    assert loaded.dataset == "synthetic" and not loaded.papers and loaded.classifier.widths == TINY_WIDTHS
    payload = torch.load(output, weights_only=False)
    assert len(payload["losses"]) == 2 and all(math.isfinite(loss) for loss in payload["losses"])
    assert payload["recipe"] == {
        **asdict(AVSyncDClassifierConfig()),
        "widths": [4, 8, 8, 16],
        "image_size": 32,
        "steps": 2,
        "batch_size": 2,
        "warmup_steps": 1,
    }
    with pytest.raises(DataError, match=r"holds the papers' classifier \(kind=avsyncd\)"):
        load_sync_classifier(output)


def test_the_papers_recipe_trains_with_adamw_weight_decay_and_clipped_gradients():
    """AVSyncD's optimizer (scripts/avsync_train.py with configs/avsync/vggss_sync_contrast.yaml): AdamW
    with weight decay 0.01, gradients clipped to norm 1, lr 2e-4 after 100 warm-up steps, batch 32."""
    from test_loop_optimizer import observed_steps

    from asva.evaluation.avsync_training import recipe_spec, train_avsyncd

    release = recipe_spec(AVSyncDClassifierConfig())
    assert (release.lr, release.warmup_steps, release.batch_size, release.steps) == (2e-4, 100, 32, 40000)
    assert (release.weight_decay, release.max_grad_norm) == (0.01, 1.0)
    fps, rate, seconds = 12, 16000, 3
    generator = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (fps * seconds, 32, 32, 3), generator=generator, dtype=torch.uint8) for _ in "ab"]
    audio = [torch.randn(rate * seconds, generator=generator) * 0.1 for _ in "ab"]
    windows = VideoWindows.from_videos(frames, audio, [0.0, 0.0], 24, fps, rate)
    tiny_recipe = AVSyncDClassifierConfig(
        widths=list(TINY_WIDTHS), image_size=32, num_clips=3, steps=3, batch_size=2, warmup_steps=0
    )
    with observed_steps() as seen:
        payload = train_avsyncd(windows, windows, tiny_recipe, "synthetic")
    assert len(seen) == 3 and all(type(optimizer) is torch.optim.AdamW for optimizer, _ in seen)
    assert seen[0][0].param_groups[0]["weight_decay"] == 0.01
    assert all(norm <= 1.0 + 1e-5 for _, norm in seen)
    assert payload["recipe"]["weight_decay"] == 0.01 and payload["recipe"]["max_grad_norm"] == 1.0
