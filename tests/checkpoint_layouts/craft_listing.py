"""Key -> shape listing of CRAFT's official `craft_mlt_25k.pth`, written from the official source.

No import from `asva`. Walked by hand from clovaai/CRAFT-pytorch:
- basenet/vgg16_bn.py: torchvision vgg16_bn `features` (cfg D with BatchNorm: each conv is
  conv, bn, relu at three consecutive indices, each 'M' one max-pool index) cut into slice1 = 0..11,
  slice2 = 12..18, slice3 = 19..28, slice4 = 29..38, the layers keeping their indices as names;
  slice5 = [MaxPool, Conv(512, 1024, 3, dilation 6), Conv(1024, 1024, 1)];
- craft.py: upconv1..4 = double_conv(1024, 512, 256), (512, 256, 128), (256, 128, 64),
  (128, 64, 32), each `conv` = [Conv(in + mid, mid, 1), BN(mid), ReLU, Conv(mid, out, 3), BN(out),
  ReLU]; conv_cls = [Conv(32, 32, 3), ReLU, Conv(32, 32, 3), ReLU, Conv(32, 16, 3), ReLU,
  Conv(16, 16, 1), ReLU, Conv(16, 2, 1)].
The released weights were saved from `torch.nn.DataParallel`, so every key starts with `module.`.
BatchNorm `num_batches_tracked` counters are left out: whether a checkpoint carries them depends on
the PyTorch version that saved it, and they hold no weights.

`python tests/checkpoint_layouts/craft_listing.py` rewrites craft_mlt_25k.json.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
LISTING = HERE / "craft_mlt_25k.json"
PREFIX = "module."
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
SLICES = {"slice1": range(0, 12), "slice2": range(12, 19), "slice3": range(19, 29), "slice4": range(29, 39)}


def _conv(keys, name, out_c, in_c, k):
    keys[f"{name}.weight"] = [out_c, in_c, k, k]
    keys[f"{name}.bias"] = [out_c]


def _bn(keys, name, c):
    for field in ("weight", "bias", "running_mean", "running_var"):
        keys[f"{name}.{field}"] = [c]


def _vgg_layers():
    """index -> ("conv", in, out) | ("bn", channels) for vgg16_bn features (relu/pool hold nothing)."""
    layers, index, channels = {}, 0, 3
    for entry in VGG16_CFG:
        if entry == "M":
            index += 1
            continue
        layers[index] = ("conv", channels, entry)
        layers[index + 1] = ("bn", entry)
        index += 3
        channels = entry
    return layers


def craft_keys() -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    layers = _vgg_layers()
    for name, indices in SLICES.items():
        for index in indices:
            layer = layers.get(index)
            if layer and layer[0] == "conv":
                _conv(keys, f"basenet.{name}.{index}", layer[2], layer[1], 3)
            elif layer:
                _bn(keys, f"basenet.{name}.{index}", layer[1])
    _conv(keys, "basenet.slice5.1", 1024, 512, 3)
    _conv(keys, "basenet.slice5.2", 1024, 1024, 1)
    for number, (in_c, mid, out_c) in enumerate([(1024, 512, 256), (512, 256, 128), (256, 128, 64), (128, 64, 32)], 1):
        _conv(keys, f"upconv{number}.conv.0", mid, in_c + mid, 1)
        _bn(keys, f"upconv{number}.conv.1", mid)
        _conv(keys, f"upconv{number}.conv.3", out_c, mid, 3)
        _bn(keys, f"upconv{number}.conv.4", out_c)
    for index, (out_c, in_c, k) in zip(
        (0, 2, 4, 6, 8), [(32, 32, 3), (32, 32, 3), (16, 32, 3), (16, 16, 1), (2, 16, 1)]
    ):
        _conv(keys, f"conv_cls.{index}", out_c, in_c, k)
    return {PREFIX + key: shape for key, shape in keys.items()}


if __name__ == "__main__":
    lines = [f"{json.dumps(key)}: {json.dumps(shape)}" for key, shape in craft_keys().items()]
    LISTING.write_text("{\n" + ",\n".join(lines) + "\n}\n")  # one key per line: diffs stay readable
    print(f"wrote {LISTING}")
