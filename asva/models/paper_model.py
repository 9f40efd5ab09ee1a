"""The paper-scale ASVA model (scaling-up-asva Section 4 and 5.1): its frozen parts and adapters.

Frozen: DynamiCrafter's UNet (`asva/models/dynamicrafter.py`), its VAE (diffusers AutoencoderKL in
the Stable Diffusion layout), its OpenCLIP ViT-H-14 text encoder (`cond_stage_model`, the CLIP model
without `visual`) and image encoder (`embedder`, the CLIP model without `transformer`, exactly as
lvdm's FrozenOpenCLIPEmbedder / FrozenOpenCLIPImageEmbedderV2 keep them), the Resampler
(`image_proj_model`), ImageBind's audio trunk and BEATs. Trainable: one Linear(768 -> 1024) per
tapped encoder layer and one audio cross-attention before each of the UNet's 16 temporal attentions.

`build_frozen_parts` builds every part on whatever device is current, so
`with torch.device("meta")` gives the full-size model without memory (asva/params.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from asva.models.adapters import AudioProjections, attach_dynamicrafter_audio_adapters
from asva.models.beats import BEATs, BEATsConfig
from asva.models.dynamicrafter import DynamiCrafterUNet, Resampler, ResamplerSpec, UNetSpec
from asva.models.imagebind import ImageBindAudio

OPEN_CLIP_ARCH = "ViT-H-14"
LATENT_SCALE_256 = 0.18215
LATENT_SCALE_512 = 0.12  # configs/inference_512_v1.0.yaml scale_factor

# configs/inference_{256,512}_v1.0.yaml: the 256 model predicts eps on the plain scaled-linear
# schedule; the 512 model predicts v with zero-terminal-SNR rescaled betas and conditions on fps.
VARIANTS = {
    "256": dict(unet=UNetSpec(), prediction_type="epsilon", zero_terminal_snr=False, latent_scale=LATENT_SCALE_256),
    "512": dict(
        unet=UNetSpec(image_cross_attention_scale_learnable=False, default_fs=24),
        prediction_type="v_prediction",
        zero_terminal_snr=True,
        latent_scale=LATENT_SCALE_512,
    ),
}


@dataclass
class PaperModelSpec:
    variant: str = "256"
    unet: UNetSpec = field(default_factory=UNetSpec)
    resampler: ResamplerSpec = field(default_factory=ResamplerSpec)
    context_dim: int = 1024
    # (encoder, layer) taps; encoder "a" is ImageBind audio, "b" is BEATs.
    taps: list[tuple[str, int]] = field(default_factory=lambda: [("a", 11)])


def sd_vae():
    """Stable Diffusion's KL autoencoder (lvdm first_stage_config: ch 128, mult 1-2-4-4, z 4)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=256,
    )


def open_clip_text_and_image() -> tuple[nn.Module, nn.Module]:
    """(cond_stage_model.model, embedder.model): two ViT-H-14 CLIPs with the unused tower removed."""
    import open_clip

    device = torch.empty(0).device
    text = open_clip.create_model(OPEN_CLIP_ARCH, pretrained=None, device=device)
    del text.visual
    image = open_clip.create_model(OPEN_CLIP_ARCH, pretrained=None, device=device)
    del image.transformer
    return text, image


def build_frozen_parts(spec: PaperModelSpec) -> dict[str, nn.Module]:
    text, image = open_clip_text_and_image()
    return {
        "unet": DynamiCrafterUNet(spec.unet),
        "first_stage_model": sd_vae(),
        "cond_stage_model": text,
        "embedder": image,
        "image_proj_model": Resampler(spec.resampler),
        "imagebind_audio": ImageBindAudio(),
        "beats": BEATs(BEATsConfig()),
    }


def build_adapters(spec: PaperModelSpec, unet: DynamiCrafterUNet, encoder_dims: dict[str, int]) -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            "audio_projections": AudioProjections(spec.taps, encoder_dims, spec.context_dim),
            "audio_cross_attn": attach_dynamicrafter_audio_adapters(unet, spec.context_dim, spec.unet.num_head_channels),
        }
    )


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(spec: PaperModelSpec) -> dict[str, int]:
    """Parameter counts of every part, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        parts = build_frozen_parts(spec)
        frozen = {name: count(module) for name, module in parts.items()}
        adapters = build_adapters(spec, parts["unet"], {"a": parts["imagebind_audio"].dim, "b": parts["beats"].dim})
    trainable = count(adapters)
    return {
        **{f"frozen_{name}": value for name, value in frozen.items()},
        "adapter_projections": count(adapters["audio_projections"]),
        "adapter_cross_attention": count(adapters["audio_cross_attn"]),
        "audio_cross_attention_blocks": len(adapters["audio_cross_attn"]),
        "trainable": trainable,
        "unet": frozen["unet"],
        "total": sum(frozen.values()) + trainable,
    }
