"""Key -> shape listing of AVSyncD's released synchronization classifier, written from the official source.

No import from `asva`. Walked by hand from lzhangbj/ASVA:
- avsync/models/audio.py `AudioConv2DNet`: conv1 = [Conv2d(1, 64, 7, stride 2, no bias), BN2d, ReLU];
  block1..block4 = Basic2DBlock(64, 64, s2), (64, 128, s2), (128, 256, s2), (256, 512, s1), each
  conv1 (3x3, no bias), bn1, conv2 (3x3, no bias), bn2;
- avsync/models/video.py `VideoR2Plus1DNet`: conv1 = [Conv3d(3, 64, (3, 7, 7), no bias), BN3d, ReLU,
  MaxPool3d]; conv2x..conv5x = two BasicR2P1DBlock each, (64, 64), (64, 128, stride 2), (128, 256,
  stride 2), (256, 512, stride 2), each spt_conv1 (1x3x3), spt_bn1, tmp_conv1 (3x1x1), tmp_bn1,
  spt_conv2 (1x3x3), spt_bn2, tmp_conv2 (3x1x1), out_bn, and res_conv (1x1x1) when the width or the
  stride changes; no convolution has a bias;
- avsync/models/head.py `FCHead(dim=512, out_dim=1, dropout=0.0)`: fc = [Linear(2 dim, dim), Dropout,
  ReLU, Linear(dim, dim // 2), Dropout, ReLU, Linear(dim // 2, out_dim)].
The release (avsync/README.md: checkpoints/avsync/vggss_sync_contrast/ckpts/checkpoint-40000/modules)
is one diffusers `ModelMixin.save_pretrained` folder per module, `audio_encoder/`, `video_encoder/`,
`head/`, each holding config.json (the constructor arguments) and diffusion_pytorch_model.bin (or
.safetensors): the module's `state_dict()`, BatchNorm `num_batches_tracked` counters included.

`widths` (the four stage widths, 64-128-256-512 in the release) only exists to list small copies of the
layout for tests. `python tests/checkpoint_layouts/avsyncd_listing.py` rewrites avsyncd_classifier.json.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
LISTING = HERE / "avsyncd_classifier.json"
RELEASE_WIDTHS = (64, 128, 256, 512)
FOLDERS = ("audio_encoder", "video_encoder", "head")
# config.json of each folder as diffusers writes it (register_to_config keeps the constructor arguments;
# 0.29.2 is the diffusers version the repository's requirements.txt pins).
CONFIGS = {
    "audio_encoder": {"_class_name": "AudioConv2DNet", "_diffusers_version": "0.29.2", "pretrained": True},
    "video_encoder": {"_class_name": "VideoR2Plus1DNet", "_diffusers_version": "0.29.2", "pretrained": True},
    "head": {"_class_name": "FCHead", "_diffusers_version": "0.29.2", "dim": 512, "out_dim": 1, "dropout": 0.0},
}


def _conv(keys: dict, name: str, out_c: int, in_c: int, kernel: list[int]) -> None:
    keys[f"{name}.weight"] = [out_c, in_c, *kernel]  # bias=False everywhere


def _bn(keys: dict, name: str, c: int) -> None:
    for field in ("weight", "bias", "running_mean", "running_var"):
        keys[f"{name}.{field}"] = [c]
    keys[f"{name}.num_batches_tracked"] = []


def _linear(keys: dict, name: str, out_f: int, in_f: int) -> None:
    keys[f"{name}.weight"] = [out_f, in_f]
    keys[f"{name}.bias"] = [out_f]


def audio_encoder_keys(widths=RELEASE_WIDTHS) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    _conv(keys, "conv1.0", widths[0], 1, [7, 7])
    _bn(keys, "conv1.1", widths[0])
    previous = widths[0]
    for index, width in enumerate((widths[0], widths[1], widths[2], widths[3]), start=1):
        _conv(keys, f"block{index}.conv1", width, previous, [3, 3])
        _bn(keys, f"block{index}.bn1", width)
        _conv(keys, f"block{index}.conv2", width, width, [3, 3])
        _bn(keys, f"block{index}.bn2", width)
        previous = width
    return keys


def _r2plus1d_block(keys: dict, name: str, in_c: int, out_c: int, strided: bool) -> None:
    _conv(keys, f"{name}.spt_conv1", out_c, in_c, [1, 3, 3])
    _bn(keys, f"{name}.spt_bn1", out_c)
    _conv(keys, f"{name}.tmp_conv1", out_c, out_c, [3, 1, 1])
    _bn(keys, f"{name}.tmp_bn1", out_c)
    _conv(keys, f"{name}.spt_conv2", out_c, out_c, [1, 3, 3])
    _bn(keys, f"{name}.spt_bn2", out_c)
    _conv(keys, f"{name}.tmp_conv2", out_c, out_c, [3, 1, 1])
    _bn(keys, f"{name}.out_bn", out_c)
    if in_c != out_c or strided:
        _conv(keys, f"{name}.res_conv", out_c, in_c, [1, 1, 1])


def video_encoder_keys(widths=RELEASE_WIDTHS) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    _conv(keys, "conv1.0", widths[0], 3, [3, 7, 7])
    _bn(keys, "conv1.1", widths[0])
    previous = widths[0]
    for stage, width in enumerate(widths, start=2):
        _r2plus1d_block(keys, f"conv{stage}x.0", previous, width, strided=stage > 2)
        _r2plus1d_block(keys, f"conv{stage}x.1", width, width, strided=False)
        previous = width
    return keys


def head_keys(dim: int = RELEASE_WIDTHS[-1], out_dim: int = 1) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    _linear(keys, "fc.0", dim, 2 * dim)
    _linear(keys, "fc.3", dim // 2, dim)
    _linear(keys, "fc.6", out_dim, dim // 2)
    return keys


def release_listing(widths=RELEASE_WIDTHS) -> dict[str, dict[str, list[int]]]:
    """folder -> (key -> shape) of the state_dict in that folder's diffusion_pytorch_model file."""
    return {
        "audio_encoder": audio_encoder_keys(widths),
        "video_encoder": video_encoder_keys(widths),
        "head": head_keys(widths[-1]),
    }


def write_listing() -> None:
    LISTING.write_text(json.dumps(release_listing(), indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_listing()
