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
# schedule and conditions on the frame stride; the 512 model predicts v with zero-terminal-SNR
# rescaled betas and conditions on fps (lvdm's fps_condition_type "fs" / "fps").
VARIANTS = {
    "256": dict(
        unet=UNetSpec(),
        prediction_type="epsilon",
        zero_terminal_snr=False,
        latent_scale=LATENT_SCALE_256,
        fs_input="stride",
    ),
    "512": dict(
        unet=UNetSpec(image_cross_attention_scale_learnable=False, default_fs=24),
        prediction_type="v_prediction",
        zero_terminal_snr=True,
        latent_scale=LATENT_SCALE_512,
        fs_input="fps",
    ),
}


def frame_stride_input(variant: str, frame_stride: int | None, source_fps: float, fps: int) -> int:
    """The value of DynamiCrafter's `fs` input for clips at `fps` resampled from `source_fps` video.

    `frame_stride` (model.frame_stride) when set. Otherwise as DynamiCrafter's training data
    (lvdm/data/webvid.py) set it: the 256 model saw the stride between the source frames it kept
    (larger = more motion per frame), so source_fps / fps to the nearest whole frame, at least 1; the
    512 model saw the clip's frame rate, so fps.
    """
    if frame_stride is not None:
        return frame_stride
    if VARIANTS[variant]["fs_input"] == "fps":
        return fps
    return max(1, round(source_fps / fps))


@dataclass
class PaperModelSpec:
    variant: str = "256"
    unet: UNetSpec = field(default_factory=UNetSpec)
    resampler: ResamplerSpec = field(default_factory=ResamplerSpec)
    context_dim: int = 1024
    # (encoder, layer) taps; encoder "a" is ImageBind audio, "b" is BEATs.
    taps: list[tuple[str, int]] = field(default_factory=lambda: [("a", 11)])


@dataclass(frozen=True)
class PaperWidth:
    """The widths of the frozen parts. "full" is the official model (the only one its checkpoints fit);
    "tiny" is the same classes and key layout at test width (`model.paper_width=tiny`), so a whole job
    on the paper model runs on a CPU in seconds from a tiny model.ckpt in the official layout."""

    unet: dict = field(default_factory=dict)  # UNetSpec overrides of the variant's spec
    resampler: ResamplerSpec = field(default_factory=ResamplerSpec)
    vae_channels: tuple[int, ...] = (128, 256, 512, 512)
    vae_layers: int = 2
    clip: dict | None = None  # open_clip.model.CLIP arguments; None: OpenCLIP's ViT-H-14


PAPER_WIDTHS = {
    "full": PaperWidth(),
    "tiny": PaperWidth(
        unet=dict(
            model_channels=32,
            channel_mult=(1, 2),
            attention_resolutions=(2, 1),
            num_head_channels=16,
            context_dim=32,
            image_tokens_per_frame=2,
        ),
        resampler=ResamplerSpec(
            dim=32,
            depth=2,
            dim_head=8,
            heads=4,
            num_queries=2,
            embedding_dim=32,
            output_dim=32,
            ff_mult=2,
            video_length=4,
        ),
        vae_channels=(32, 32),
        vae_layers=1,
        clip=dict(
            embed_dim=16,
            vision=dict(layers=2, width=32, head_width=16, patch_size=14, image_size=28),
            text=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
        ),
    ),
}


def unet_spec(variant: str, width: str = "full") -> UNetSpec:
    from dataclasses import replace

    return replace(VARIANTS[variant]["unet"], **PAPER_WIDTHS[width].unet)


def sd_vae(width: str = "full"):
    """Stable Diffusion's KL autoencoder (lvdm first_stage_config: ch 128, mult 1-2-4-4, z 4)."""
    from diffusers import AutoencoderKL

    channels = PAPER_WIDTHS[width].vae_channels
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=PAPER_WIDTHS[width].vae_layers,
        latent_channels=4,
        sample_size=256,
    )


def _clip(width: str) -> nn.Module:
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    settings = PAPER_WIDTHS[width].clip
    if settings is None:
        return open_clip.create_model(OPEN_CLIP_ARCH, pretrained=None, device=torch.empty(0).device)
    return open_clip.model.CLIP(
        embed_dim=settings["embed_dim"],
        vision_cfg=CLIPVisionCfg(**settings["vision"]),
        text_cfg=CLIPTextCfg(**settings["text"]),
    )


def open_clip_text_and_image(width: str = "full") -> tuple[nn.Module, nn.Module]:
    """(cond_stage_model.model, embedder.model): two ViT-H-14 CLIPs with the unused tower removed."""
    text = _clip(width)
    del text.visual
    image = _clip(width)
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
            "audio_cross_attn": attach_dynamicrafter_audio_adapters(
                unet, spec.context_dim, spec.unet.num_head_channels
            ),
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


class OpenCLIPText(nn.Module):
    """lvdm FrozenOpenCLIPEmbedder(layer="penultimate"): [B, 77, width] tokens from the second-to-last block."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.model = clip

    def forward(self, captions: list[str]) -> torch.Tensor:
        import open_clip

        device = self.model.token_embedding.weight.device
        tokens = open_clip.tokenize(captions).to(device)
        x = self.model.token_embedding(tokens) + self.model.positional_embedding
        for block in self.model.transformer.resblocks[:-1]:
            x = block(x, attn_mask=self.model.attn_mask)
        return self.model.ln_final(x)


class OpenCLIPImage(nn.Module):
    """lvdm FrozenOpenCLIPImageEmbedderV2: every token of the vision transformer (no ln_post, no proj)."""

    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.model = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [-1, 1] -> [B, 1 + patches, width]."""
        from torch.nn import functional as F

        visual = self.model.visual
        size = visual.image_size if isinstance(visual.image_size, tuple) else (visual.image_size,) * 2
        x = F.interpolate(images, size=size, mode="bicubic", align_corners=True, antialias=True)
        x = (x + 1.0) / 2.0
        mean = torch.tensor(self.mean, device=x.device)[:, None, None]
        std = torch.tensor(self.std, device=x.device)[:, None, None]
        return visual.transformer(visual._embeds((x - mean) / std))


class LatentCodec(nn.Module):
    """The VAE as the first stage of the video model: frames <-> scaled latents, frame by frame."""

    def __init__(self, vae: nn.Module, scale: float):
        super().__init__()
        self.vae = vae
        self.scale = scale

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] in [-1, 1] -> [B, 4, T, H/8, W/8] (the posterior's mode, as lvdm)."""
        batch = frames.shape[0]
        latents = self.vae.encode(frames.flatten(0, 1)).latent_dist.mode() * self.scale
        return latents.unflatten(0, (batch, -1)).transpose(1, 2)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, 4, T, h, w] -> [B, T, 3, H, W] in [-1, 1]."""
        batch = latents.shape[0]
        frames = self.vae.decode(latents.transpose(1, 2).flatten(0, 1) / self.scale).sample
        return frames.unflatten(0, (batch, -1))


class DynamiCrafterBase(nn.Module):
    """DynamiCrafter's image-to-video model with the ImageToVideoBase interface (conditions, forward).

    Conditioning as lvdm's LatentVisualDiffusion (conditioning_key "hybrid"): the first frame's
    latent is concatenated to every noisy frame; cross-attention sees the 77 text tokens followed by
    the Resampler's image tokens. A dropped text is the empty caption (uncond_type "empty_seq"); a
    dropped image is the image encoder's tokens of an all-zero image, as lvdm's sampler builds them.
    """

    def __init__(
        self,
        unet: DynamiCrafterUNet,
        first_stage: LatentCodec,
        text: OpenCLIPText,
        image: OpenCLIPImage,
        image_proj: Resampler,
        frame_stride: int,
    ):
        super().__init__()
        self.unet = unet
        self.first_stage = first_stage
        self.text_encoder = text
        self.image_encoder = image
        self.image_proj = image_proj
        self.frame_stride = frame_stride

    def encode_video(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        from asva.models.first_stage import frames_to_unit

        return self.first_stage.encode(frames_to_unit(frames_uint8))

    def conditions(
        self, frames_uint8: torch.Tensor, captions: list[str], drop_image: torch.Tensor, drop_text: torch.Tensor
    ):
        from asva.models.asva_model import Conditions
        from asva.models.first_stage import frames_to_unit

        first = frames_to_unit(frames_uint8[:, :1])
        first_latent = self.first_stage.encode(first)
        text = self.text_encoder(["" if drop else caption for caption, drop in zip(captions, drop_text.tolist())])
        image_input = first[:, 0] * (~drop_image).to(first.device, first.dtype)[:, None, None, None]
        image = self.image_proj(self.image_encoder(image_input))
        return Conditions(first_latent=first_latent, context=torch.cat([text, image], dim=1))

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond) -> torch.Tensor:
        x = torch.cat([noisy, cond.first_latent.expand_as(noisy)], dim=1)
        fs = torch.full((noisy.shape[0],), self.frame_stride, dtype=torch.long, device=noisy.device)
        return self.unet(x, timesteps, cond.context, fs=fs, audio=cond.audio)


def build_dynamicrafter_base(
    variant: str, frame_stride: int | None = None, width: str = "full"
) -> tuple[DynamiCrafterBase, dict[str, nn.Module]]:
    """The DynamiCrafter base with random weights, and its parts by their checkpoint prefixes."""
    settings = VARIANTS[variant]
    text, image = open_clip_text_and_image(width)
    parts = {
        "unet": DynamiCrafterUNet(unet_spec(variant, width)),
        "first_stage_model": sd_vae(width),
        "cond_stage_model": text,
        "embedder": image,
        "image_proj_model": Resampler(PAPER_WIDTHS[width].resampler),
    }
    base = DynamiCrafterBase(
        parts["unet"],
        LatentCodec(parts["first_stage_model"], settings["latent_scale"]),
        OpenCLIPText(text),
        OpenCLIPImage(image),
        parts["image_proj_model"],
        frame_stride if frame_stride is not None else settings["unet"].default_fs,
    )
    return base.requires_grad_(False).eval(), parts


def load_dynamicrafter_base(
    variant: str, checkpoint: str | None, frame_stride: int | None = None, width: str = "full"
) -> DynamiCrafterBase:
    """The frozen DynamiCrafter base from its official model.ckpt (every part loaded strictly)."""
    from asva.errors import DataError
    from asva.models.checkpoints import load_parts, read_lightning_state

    if not checkpoint:
        raise DataError(
            "model.base_checkpoint: the paper model needs DynamiCrafter's official model.ckpt (nothing is downloaded)"
        )
    state = read_lightning_state(checkpoint)  # a missing or wrong file fails before 2B parameters are built
    base, parts = build_dynamicrafter_base(variant, frame_stride, width)
    load_parts(state, parts)
    return base
