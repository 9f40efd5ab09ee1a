"""ImageBind's audio and vision trunks (imagebind_huge), in the official key layout.

Written for this project from the public ImageBind code (imagebind/models/imagebind_model.py,
multimodal_preprocessors.py, transformer.py, helpers.py). Module names follow the official ones so
that the `modality_*.audio.*` and `modality_*.vision.*` entries of `imagebind_huge.pth` load with
strict=True (`load_imagebind`). Two uses:

- the ASVA audio encoder: `ImageBindAudio.hidden_states(fbank)` returns the tokens after every
  block (229 for 2 s: one CLS token and 12 frequency x 19 time patches) and each token's time;
- the IA metric: `embed_audio` / `embed_vision` return ImageBind's normalised joint embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio.compliance.kaldi as kaldi
from torch import nn
from torch.nn import functional as F

from asva.errors import DataError

# ImageBind's audio front-end (imagebind/data.py): kaldi fbank, 128 mel, 25 ms / 10 ms, 2 s clips
# padded from 198 to 204 frames, normalised with the dataset mean and std below.
FBANK_MEAN = -4.268
FBANK_STD = 9.138
TARGET_FRAMES = 204
FRAME_SHIFT_S = 0.010
FRAME_LENGTH_S = 0.025
# CLIP's pixel statistics, used by ImageBind's vision transform.
VISION_MEAN = (0.48145466, 0.4578275, 0.40821073)
VISION_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TrunkSpec:
    dim: int
    blocks: int
    heads: int
    out_dim: int = 1024


AUDIO_HUGE = TrunkSpec(dim=768, blocks=12, heads=12)
VISION_HUGE = TrunkSpec(dim=1280, blocks=32, heads=16)


class Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """BlockWithMasking: pre-norm nn.MultiheadAttention (audio: add_bias_kv) and MLP."""

    def __init__(self, dim: int, heads: int, add_bias_kv: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=add_bias_kv, batch_first=True)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self, spec: TrunkSpec, add_bias_kv: bool, pre_norm: bool):
        super().__init__()
        # Official: Sequential(LayerNorm or Identity, EinOpsRearrange); only the LayerNorm has weights.
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(spec.dim, eps=1e-6) if pre_norm else nn.Identity())
        self.blocks = nn.Sequential(*(Block(spec.dim, spec.heads, add_bias_kv) for _ in range(spec.blocks)))

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        hidden = []
        x = self.pre_transformer_layer(tokens)
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        return hidden


class PatchStem(nn.Module):
    def __init__(self, proj: nn.Module, norm: nn.Module | None):
        super().__init__()
        self.proj = proj
        self.norm_layer = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return x if self.norm_layer is None else self.norm_layer(x)


class PosEmbedding(nn.Module):
    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * dim**-0.5)


class Preprocessor(nn.Module):
    """RGBDTPreprocessor / AudioPreprocessor: stem, CLS token, learnt positions."""

    def __init__(self, stem: PatchStem, patches: int, dim: int):
        super().__init__()
        self.rgbt_stem = stem
        self.pos_embedding_helper = PosEmbedding(patches + 1, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class Head(nn.Sequential):
    """LayerNorm, SelectElement(CLS), Linear to the joint space (bias-free)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__(nn.LayerNorm(dim, eps=1e-6), nn.Identity(), nn.Linear(dim, out_dim, bias=False))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self[2](self[0](tokens)[:, 0])


class LogitScale(nn.Module):
    """LearnableLogitScaling(learnable=False): a stored constant, kept for strict loading."""

    def __init__(self, init: float):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.log(torch.tensor(init)))


def waveform_fbank(waveform: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """ImageBind's front-end (imagebind/data.py waveform2melspec): [B, S] 16 kHz -> raw [B, frames, 128]."""
    banks = [
        kaldi.fbank(
            (w - w.mean())[None].float(),
            htk_compat=True,
            sample_frequency=sample_rate,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=128,
            dither=0.0,
            frame_length=25,
            frame_shift=10,
        )
        for w in waveform
    ]
    return torch.stack(banks)


def fbank_patch_layout(
    spec_frames: int = TARGET_FRAMES, mel_bins: int = 128, kernel: int = 16, stride: int = 10
) -> tuple[int, int]:
    return (mel_bins - kernel) // stride + 1, (spec_frames - kernel) // stride + 1


class ImageBindAudio(nn.Module):
    """Keys: `modality_preprocessors.audio.*`, `modality_trunks.audio.*`, `modality_heads.audio.*`,
    `modality_postprocessors.audio.*` (here without the `modality_*.audio` nesting; see checkpoints)."""

    kernel, stride = 16, 10

    def __init__(self, spec: TrunkSpec = AUDIO_HUGE, mel_bins: int = 128, target_frames: int = TARGET_FRAMES):
        super().__init__()
        self.spec = spec
        self.mel_bins, self.target_frames = mel_bins, target_frames
        freq, time = fbank_patch_layout(target_frames, mel_bins, self.kernel, self.stride)
        self.layout = (freq, time)
        stem = PatchStem(nn.Conv2d(1, spec.dim, self.kernel, stride=self.stride, bias=False), nn.LayerNorm(spec.dim))
        self.preprocessor = Preprocessor(stem, freq * time, spec.dim)
        self.trunk = Trunk(spec, add_bias_kv=True, pre_norm=False)
        self.head = Head(spec.dim, spec.out_dim)
        self.postprocessor = nn.Sequential(nn.Identity(), LogitScale(20.0))

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def num_layers(self) -> int:
        return self.spec.blocks

    def prepare(self, fbank: torch.Tensor) -> torch.Tensor:
        """Raw kaldi fbank [B, frames, mel] -> normalised [B, 1, mel, target_frames] (pad or cut)."""
        frames = fbank.shape[1]
        if frames < self.target_frames:
            fbank = F.pad(fbank, (0, 0, 0, self.target_frames - frames))
        fbank = fbank[:, : self.target_frames]
        return ((fbank - FBANK_MEAN) / FBANK_STD).transpose(1, 2)[:, None]

    def forward(self, project_fbank: torch.Tensor) -> list[torch.Tensor]:
        """The ASVA encoder interface: the project's filterbank (`asva.data.audio.fbank`, ImageBind's own
        front-end normalised as (x - mean) / (2 std)) -> the tokens after each block."""
        from asva.data.audio import FBANK_MEAN as PROJECT_MEAN
        from asva.data.audio import FBANK_STD as PROJECT_STD

        return self.hidden_states(project_fbank * (2 * PROJECT_STD) + PROJECT_MEAN)

    def token_times(self, num_frames: int | None = None) -> torch.Tensor:
        """Seconds of every token: CLS first (given the clip's centre), then frequency-major patches,
        each at the centre of the fbank frames it covers (fixed: the input is padded or cut to 204)."""
        freq, time = self.layout
        first_frame = torch.arange(time, dtype=torch.float64) * self.stride
        centre = (first_frame + (self.kernel - 1) / 2) * FRAME_SHIFT_S + FRAME_LENGTH_S / 2
        patches = centre.repeat(freq)
        clip_centre = torch.tensor(
            [(self.target_frames - 1) / 2 * FRAME_SHIFT_S + FRAME_LENGTH_S / 2], dtype=torch.float64
        )
        return torch.cat([clip_centre, patches])

    def hidden_states(self, fbank: torch.Tensor) -> list[torch.Tensor]:
        """Raw fbank [B, frames, mel] -> the tokens after each block, [B, 229, 768] each."""
        return self.trunk(self.preprocessor(self.prepare(fbank)))

    def embed_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        """Unit-norm ImageBind audio embeddings [B, 1024] of 2 s fbank clips."""
        return F.normalize(self.head(self.hidden_states(fbank)[-1]), dim=-1)


class PadIm2Video(nn.Module):
    """Repeat an image twice along time, as ImageBind's vision stem does before its Conv3d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, None].repeat(1, 1, 2, 1, 1) if x.ndim == 4 else x


class ImageBindVision(nn.Module):
    def __init__(self, spec: TrunkSpec = VISION_HUGE, image_size: int = 224, patch: int = 14):
        super().__init__()
        self.spec = spec
        self.image_size = image_size
        proj = nn.Sequential(
            PadIm2Video(), nn.Conv3d(3, spec.dim, (2, patch, patch), stride=(2, patch, patch), bias=False)
        )
        self.preprocessor = Preprocessor(PatchStem(proj, None), (image_size // patch) ** 2, spec.dim)
        self.trunk = Trunk(spec, add_bias_kv=False, pre_norm=True)
        self.head = Head(spec.dim, spec.out_dim)

    def prepare(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """[B, H, W, 3] uint8 -> resized (bicubic, shorter side), centre-cropped, normalised."""
        x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
        scale = self.image_size / min(x.shape[-2:])
        size = [max(self.image_size, round(s * scale)) for s in x.shape[-2:]]
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        x = x[:, :, top : top + self.image_size, left : left + self.image_size]
        mean = torch.tensor(VISION_MEAN, device=x.device)[:, None, None]
        std = torch.tensor(VISION_STD, device=x.device)[:, None, None]
        return (x - mean) / std

    def embed_vision(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Unit-norm ImageBind vision embeddings [B, 1024] of RGB images."""
        tokens = self.trunk(self.preprocessor(self.prepare(images_uint8)))[-1]
        return F.normalize(self.head(tokens), dim=-1)


_AUDIO_PARTS = {
    "modality_preprocessors.audio.": "preprocessor.",
    "modality_trunks.audio.": "trunk.",
    "modality_heads.audio.": "head.",
    "modality_postprocessors.audio.": "postprocessor.",
}
_VISION_PARTS = {
    "modality_preprocessors.vision.": "preprocessor.",
    "modality_trunks.vision.": "trunk.",
    "modality_heads.vision.": "head.",
}


def _select(state: dict[str, torch.Tensor], parts: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for official, ours in parts.items():
            if key.startswith(official):
                out[ours + key[len(official) :]] = value
    return out


def imagebind_audio_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The audio entries of an `imagebind_huge.pth` state_dict, renamed for ImageBindAudio."""
    return _select(state, _AUDIO_PARTS)


def imagebind_vision_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return _select(state, _VISION_PARTS)


def read_imagebind(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ImageBind checkpoint {path} does not exist (expected the official imagebind_huge.pth)")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_imagebind_audio(path: str | Path, spec: TrunkSpec = AUDIO_HUGE) -> ImageBindAudio:
    """The audio trunk, preprocessor, head and postprocessor of `imagebind_huge.pth`, strictly."""
    from dataclasses import replace

    state = imagebind_audio_state(read_imagebind(path))
    if "head.2.weight" in state:  # the joint-space width is the file's (1024 for imagebind_huge)
        spec = replace(spec, out_dim=state["head.2.weight"].shape[0])
    model = ImageBindAudio(spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise DataError(
            f"ImageBind checkpoint {path} does not fit the audio trunk {spec}: {str(error)[:600]}"
        ) from None
    return model.eval()


def load_imagebind_vision(path: str | Path) -> ImageBindVision:
    model = ImageBindVision()
    model.load_state_dict(imagebind_vision_state(read_imagebind(path)), strict=True)
    return model.eval()
