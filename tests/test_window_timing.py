"""Frame timing and global tokens of the audio window, on the encoders' real token times (2-s clips).

Frame i is timed at the centre of its 1/FPS chunk, (i + 0.5) / FPS, and its window is half-open, so
r = 0.5 is the papers' split of the clip's patch tokens into non-overlapping chunks, one per frame.
Every frame also sees each tap's global (CLS) token, unless `model.global_audio_token_every_frame`
is off.
"""

from __future__ import annotations

import pytest
import torch

from asva.config.schema import ModelConfig
from asva.data.audio import fbank
from asva.models import beats as beats_module
from asva.models.asva_model import ASVAModel, global_token_flags
from asva.models.audio_encoders import TinyAudioEncoder
from asva.models.imagebind import ImageBindAudio, TrunkSpec
from asva.models.tiny_unet import TinyVideoUNet
from asva.models.window_mask import frame_times, window_mask

FBANK_FRAMES = 198  # 2 s at a 10 ms shift with 25 ms windows
RADII = (0.5, 1.0, 1.5, 2.0, 3.0)


def _imagebind() -> ImageBindAudio:
    return ImageBindAudio(TrunkSpec(dim=16, blocks=2, heads=2, out_dim=8)).eval()


def _beats() -> beats_module.BEATs:
    cfg = beats_module.BEATsConfig(
        embed_dim=16,
        encoder_layers=2,
        encoder_embed_dim=16,
        encoder_ffn_embed_dim=16,
        encoder_attention_heads=2,
        conv_pos=4,
        conv_pos_groups=2,
    )
    return beats_module.BEATs(cfg).eval()


def _stand_in() -> TinyAudioEncoder:
    return TinyAudioEncoder("tiny_semantic", 1, 8, token_seconds=0.04, num_classes=2)  # the config's default stride


def _patch_times(encoder) -> torch.Tensor:
    """The encoder's patch-token times (its global tokens left out)."""
    times = encoder.token_times(FBANK_FRAMES)
    return times[~global_token_flags(encoder, len(times))]


ENCODERS = {"imagebind": _imagebind, "beats": _beats, "stand-in": _stand_in}

# Patch tokens each frame sees, per (encoder, FPS, r). ImageBind: 19 time columns of 12 tokens, 100 ms
# apart from 87.5 ms; BEATs: 12 columns of 8, 160 ms apart from 87.5 ms; the stand-in: 49 tokens,
# 40 ms apart from 27.5 ms. No token lies within a float's error of a window edge, so these are exact.
VISIBLE = {
    ("imagebind", 6): {
        0.5: [12, 24, 24, 12, 24, 24, 12, 24, 24, 12, 24, 12],
        1.0: [24, 48, 36, 36, 48, 36, 36, 48, 36, 36, 48, 24],
        1.5: [36, 60, 60, 60, 60, 60, 60, 60, 60, 60, 48, 36],
        2.0: [48, 60, 84, 84, 72, 84, 84, 72, 84, 84, 60, 48],
        3.0: [60, 84, 108, 120, 120, 120, 120, 120, 120, 108, 84, 60],
    },
    ("imagebind", 12): {
        0.5: [0, 12, 12, 12, 12, 12, 0, 12, 12, 12, 12, 12, 0, 12, 12, 12, 12, 12, 0, 12, 12, 12, 12, 0],
        1.0: [12, 24, 24, 12, 12, 24, 24, 24, 24, 12, 12, 24, 24, 24, 24, 12, 12, 24, 24, 24, 24, 12, 12, 12],
        1.5: [12, 24, 36, 36, 36, 24, 24, 24, 36, 36, 36, 24, 24, 24, 36, 36, 36, 24, 24, 24, 36, 36, 24, 12],
        2.0: [24, 36, 36, 36, 36, 36, 48, 48, 36, 36, 36, 36, 48, 48, 36, 36, 36, 36, 48, 48, 36, 36, 24, 12],
        3.0: [36, 36, 48, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 48, 36, 24],
    },
    ("beats", 6): {
        0.5: [8] * 12,
        1.0: [16, 24, 16, 16, 16, 16, 16, 16, 16, 16, 16, 8],
        1.5: [16, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 16],
        2.0: [24, 32, 40, 32, 32, 32, 32, 32, 32, 32, 24, 16],
        3.0: [32, 40, 48, 56, 48, 48, 48, 48, 48, 40, 32, 24],
    },
    ("beats", 12): {
        0.5: [0, 8, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0, 8, 0],
        1.0: [8] * 13 + [16] + [8] * 9 + [0],
        1.5: [8, 16, 16, 16] + [8, 16] * 9 + [8, 8],
        2.0: [8] + [16] * 11 + [24, 16, 24] + [16] * 7 + [8, 8],
        3.0: [16, 16] + [24] * 9 + [32, 24, 32, 24, 32] + [24] * 5 + [16, 16, 8],
    },
    ("stand-in", 6): {
        0.5: [4, 4, 4, 4, 5, 4, 4, 4, 4, 4, 5, 3],
        1.0: [6, 8, 8, 9, 9, 8, 8, 8, 8, 9, 9, 5],
        1.5: [8, 12, 12, 13, 13, 13, 12, 12, 12, 13, 12, 8],
        2.0: [10, 14, 17, 17, 17, 17, 16, 16, 17, 17, 14, 10],
        3.0: [14, 19, 23, 25, 25, 25, 25, 25, 25, 22, 18, 14],
    },
    ("stand-in", 12): {
        0.5: [2] * 8 + [3] + [2] * 11 + [3, 2, 2, 1],
        1.0: [3] + [4] * 6 + [5, 5] + [4] * 10 + [5, 5, 4, 4, 2],
        1.5: [4] + [6] * 6 + [7, 7, 7] + [6] * 9 + [7, 7, 7, 5, 3],
        2.0: [5, 7] + [8] * 4 + [9] * 4 + [8] * 8 + [9] * 4 + [6, 4],
        3.0: [7, 9, 11, 12, 12] + [13] * 6 + [12] * 6 + [13] * 4 + [11, 9, 6],
    },
}


def _mask(times: torch.Tensor, fps: int, radius: float) -> torch.Tensor:
    return window_mask(frame_times(2 * fps, fps), times, radius, fps)


def test_frames_are_timed_at_their_chunk_centres():
    assert torch.allclose(frame_times(3, 6), torch.tensor([1 / 12, 3 / 12, 5 / 12], dtype=torch.float64))


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("fps", [6, 12])
def test_visible_patch_tokens_per_frame(encoder, fps):
    times = _patch_times(ENCODERS[encoder]())
    masks = {radius: _mask(times, fps, radius) for radius in RADII}
    assert {radius: mask.sum(dim=1).tolist() for radius, mask in masks.items()} == VISIBLE[(encoder, fps)]
    # r = 0.5 is the many-to-one split: every patch token belongs to exactly one frame.
    assert (masks[0.5].sum(dim=0) == 1).all()
    # A wider window keeps every token of a narrower one, and the frames see more tokens in all.
    for narrow, wide in zip(RADII, RADII[1:]):
        assert (masks[narrow] <= masks[wide]).all()
        assert masks[narrow].sum() < masks[wide].sum()


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_at_6_fps_and_half_a_frame_every_frame_has_tokens_of_its_own(encoder):
    """Frame timed at i / FPS, frame 0 of ImageBind and BEATs (first patch centre 87.5 ms) saw none."""
    mask = _mask(_patch_times(ENCODERS[encoder]()), 6, 0.5)
    assert mask.any(dim=1).all()


def test_12_fps_and_half_a_frame_is_finer_than_imagebind_and_beats_tokens():
    """At 12 FPS a chunk (83 ms) is shorter than the token spacing: some frames have no patch token."""
    for encoder in ("imagebind", "beats"):
        assert 0 in VISIBLE[(encoder, 12)][0.5]


# --- global tokens ----------------------------------------------------------------------------------


def _model(every_frame: bool, radius: float = 0.5, fps: int = 6) -> ASVAModel:
    torch.manual_seed(0)

    class UNetOnly(torch.nn.Module):  # audio_context never touches the base; the adapters need a UNet
        def __init__(self):
            super().__init__()
            self.unet = TinyVideoUNet(4, 16, [1], 2, 16)

    cfg = ModelConfig(context_dim=16, heads=2, global_audio_token_every_frame=every_frame)
    encoders = {"a": _imagebind(), "b": _beats()}
    return ASVAModel(UNetOnly(), encoders, [("a", 0), ("a", 1), ("b", 1)], radius, fps, cfg, FBANK_FRAMES)


def _features(model: ASVAModel):
    waveform = torch.randn(2, 32000) * 0.1
    return model.encode_audio(fbank(waveform), waveform)


def test_imagebind_cls_tokens_are_marked_global():
    features = _features(_model(every_frame=True))
    assert features.token_times.shape == features.global_tokens.shape == (229 + 229 + 96,)
    assert torch.nonzero(features.global_tokens).flatten().tolist() == [0, 229]  # one CLS per ImageBind tap
    assert torch.equal(features.select(slice(0, 1)).global_tokens, features.global_tokens)


@pytest.mark.parametrize("radius, fps", [(0.5, 6), (0.5, 12), (1.5, 6)])
def test_every_frame_sees_every_global_token(radius, fps):
    model = _model(every_frame=True, radius=radius, fps=fps)
    features = _features(model)
    keep = torch.zeros(2, dtype=torch.bool)
    mask = model.audio_context(features, keep, num_frames=2 * fps).frame_mask
    assert mask[:, features.global_tokens].all()
    # The patch tokens keep their time window.
    patches = ~features.global_tokens
    expected = window_mask(frame_times(2 * fps, fps), features.token_times[patches], radius, fps)
    assert torch.equal(mask[:, patches], expected)
    # So at 12 FPS, r = 0.5, the frames without a patch token of their own still hear the clip.
    assert mask.any(dim=1).all()
    # The null audio of guidance has the same layout.
    dropped = model.audio_context(features, torch.ones(2, dtype=torch.bool), num_frames=2 * fps).frame_mask
    assert torch.equal(dropped, mask)


def test_without_the_setting_a_global_token_passes_the_window_at_the_clip_centre():
    model = _model(every_frame=False)
    features = _features(model)
    mask = model.audio_context(features, torch.zeros(2, dtype=torch.bool), num_frames=12).frame_mask
    assert torch.equal(mask, window_mask(frame_times(12, 6), features.token_times, 0.5, 6))
    # Centre 1.03 s lies in frame 6's chunk [1, 7/6) s.
    assert torch.nonzero(mask[:, 0]).flatten().tolist() == [6]
