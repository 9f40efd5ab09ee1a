"""Readers of the config's two string-valued knobs that hold more than a name: `audio_layers` and `k`."""

from __future__ import annotations

import re

from asva.config.checks import FieldError

# The audio encoders by name (audio.encoders): a = ImageBind audio or its stand-in, b = BEATs or its stand-in.
ENCODER_NAMES = ("a", "b")

_LAYER_SPEC = re.compile(r"^[a-z]:\d+(-\d+)*$")

# The feature sets of scaling-up-asva Fig. 4a by their paper names (encoder a = ImageBind audio,
# b = BEATs; 0-based block indices). They are values of `audio_layers`, not a config group, so
# `audio_layers=ib11` and `audio_layers=a:11` are the same override and the same config.
AUDIO_LAYER_PRESETS = {
    "ib11": "a:11",
    "ib7-9-11": "a:7-9-11",
    "ib3-7-11": "a:3-7-11",
    "ib3-7-11+beats3-7-11": "a:3-7-11+b:3-7-11",
}


def parse_audio_layers(spec: str) -> dict[str, list[int]]:
    """`a:3-7-11+b:3-7-11` (or its preset name) -> {"a": [3, 7, 11], "b": [3, 7, 11]} (0-based)."""
    spec = AUDIO_LAYER_PRESETS.get(spec, spec)
    layers: dict[str, list[int]] = {}
    for part in spec.replace(" ", "").split("+"):
        if not _LAYER_SPEC.match(part):
            raise FieldError(
                "audio_layers",
                f"cannot read {spec!r}; write e.g. 'a:11', 'a:3-7-11' or 'a:3-7-11+b:3-7-11', "
                f"or a preset: {', '.join(AUDIO_LAYER_PRESETS)}",
            )
        name, indices = part.split(":")
        if name not in ENCODER_NAMES:
            raise FieldError(
                "audio_layers", f"unknown encoder {name!r} in {spec!r} (known: {', '.join(ENCODER_NAMES)})"
            )
        if name in layers:
            raise FieldError("audio_layers", f"encoder {name!r} appears twice in {spec!r}")
        layers[name] = [int(i) for i in indices.split("-")]
    return layers


def parse_k(k: str) -> int | None:
    """K videos per class; None means the whole training split."""
    if str(k) == "all":
        return None
    try:
        value = int(k)
    except ValueError:
        raise FieldError("k", f"must be a whole number >= 0 or 'all', got {k!r}") from None
    if value < 0:
        raise FieldError("k", f"must be >= 0 or 'all', got {value}")
    return value
