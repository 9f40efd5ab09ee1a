"""The paper model at test width: random tensors in the official checkpoint layouts, written from the
listings under tests/checkpoint_layouts/ (without asva), and the tiny DynamiCrafter base built from them.
Shared by tests/test_paper_model*.py and tests/test_generate.py."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import torch

from asva.models.checkpoints import load_parts
from asva.models.dynamicrafter import DynamiCrafterUNet, Resampler, ResamplerSpec, UNetSpec
from asva.models.paper_model import PAPER_WIDTHS

LAYOUTS = Path(__file__).parent / "checkpoint_layouts"
sys.path.insert(0, str(LAYOUTS))
import dynamicrafter_listing  # noqa: E402  (official layouts, written without asva)
import encoder_listings  # noqa: E402

# The test width of asva.models.paper_model.PAPER_WIDTHS["tiny"], in the official configs' terms.
TINY_UNET = dict(
    dynamicrafter_listing.UNET_256,
    model_channels=32,
    channel_mult=[1, 2],
    attention_resolutions=[2, 1],
    num_head_channels=16,
    context_dim=32,
)
# The test width the paper model itself builds (model.paper_width=tiny).
TINY_UNET_SPEC = UNetSpec(**PAPER_WIDTHS["tiny"].unet)
TINY_RESAMPLER = dict(
    dim=32, depth=2, dim_head=8, heads=4, num_queries=2, embedding_dim=32, output_dim=32, ff_mult=2, video_length=4
)
TINY_VAE = dict(dynamicrafter_listing.VAE, ch=32, ch_mult=[1, 1], num_res_blocks=1)
TINY_BEATS = dict(
    encoder_listings.BEATS_ITER3_CFG,
    embed_dim=24,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=4,
    conv_pos=16,
    conv_pos_groups=4,
    num_buckets=32,
    max_distance=64,
)
IMAGEBIND_DIM = 64


def random_state(listing: dict[str, list[int]], seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random weights in a listing's layout (on `meta`: shapes only, for the full-size models)."""
    if device == "meta":
        return {k: torch.empty(shape, device="meta") for k, shape in listing.items()}
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=generator) * 0.05 for k, shape in listing.items()}


def committed_listing(variant: str) -> dict[str, list[int]]:
    """The full-size DynamiCrafter checkpoint's keys and shapes, as committed."""
    with gzip.open(LAYOUTS / f"dynamicrafter_{variant}.json.gz", "rt") as handle:
        return json.load(handle)


def tiny_open_clip():
    """OpenCLIP at test width, both halves: lvdm keeps its text half as the text encoder and its image
    half as the image embedder."""
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    return open_clip.model.CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=2, width=32, head_width=16, patch_size=14, image_size=28),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    )


def tiny_base():
    from diffusers import AutoencoderKL

    from asva.models.paper_model import DynamiCrafterBase, LatentCodec, OpenCLIPImage, OpenCLIPText

    torch.manual_seed(0)
    text_clip, image_clip = tiny_open_clip(), tiny_open_clip()
    del text_clip.visual
    del image_clip.transformer
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 32),
        layers_per_block=1,
        latent_channels=4,
    )
    # The text and image encoders load the official open-clip-torch layout (cond_stage_model / embedder).
    official = {
        f"cond_stage_model.model.{k}": v
        for k, v in tiny_open_clip().state_dict().items()
        if not k.startswith("visual.")
    }
    official.update(
        {f"embedder.model.{k}": v for k, v in tiny_open_clip().state_dict().items() if not k.startswith("transformer.")}
    )
    load_parts(official, {"cond_stage_model": text_clip, "embedder": image_clip})

    unet = DynamiCrafterUNet(TINY_UNET_SPEC).eval()
    load_parts(random_state(dynamicrafter_listing.checkpoint_listing(TINY_UNET, TINY_RESAMPLER)), {"unet": unet})
    resampler = Resampler(ResamplerSpec(**TINY_RESAMPLER)).eval()
    return DynamiCrafterBase(
        unet, LatentCodec(vae, 0.18215), OpenCLIPText(text_clip), OpenCLIPImage(image_clip), resampler, 3
    ).eval()


def write_checkpoints(folder: Path) -> dict[str, Path]:
    """model.ckpt, imagebind_huge.pth and BEATs_iter3.pt at tiny width, in the official layouts."""
    torch.manual_seed(0)
    state = random_state(dynamicrafter_listing.checkpoint_listing(TINY_UNET, TINY_RESAMPLER), seed=1)
    state.update(
        {
            f"first_stage_model.{k}": v
            for k, v in random_state(dynamicrafter_listing.first_stage_keys(TINY_VAE), 2).items()
        }
    )
    # lvdm keeps open-clip-torch's own module layout: the text CLIP without `visual`, the image one without `transformer`.
    state.update(
        {
            f"cond_stage_model.model.{k}": v
            for k, v in tiny_open_clip().state_dict().items()
            if not k.startswith("visual.")
        }
    )
    state.update(
        {f"embedder.model.{k}": v for k, v in tiny_open_clip().state_dict().items() if not k.startswith("transformer.")}
    )
    state["alphas_cumprod"] = torch.linspace(0.999, 0.01, 1000)  # schedule buffers, as in the real file
    paths = {
        "base": folder / "model.ckpt",
        "imagebind": folder / "imagebind_huge.pth",
        "beats": folder / "BEATs_iter3.pt",
    }
    torch.save({"state_dict": state, "epoch": 0}, paths["base"])
    imagebind = {
        **encoder_listings.imagebind_audio_keys(dim=IMAGEBIND_DIM, blocks=12, out_dim=16),
        **encoder_listings.imagebind_vision_keys(dim=32, blocks=2, out_dim=16, image=28, patch=14),
        **encoder_listings.imagebind_other_modalities_sample(),
    }
    torch.save(random_state(imagebind, 3), paths["imagebind"])
    torch.save({"cfg": TINY_BEATS, "model": random_state(encoder_listings.beats_keys(TINY_BEATS), 4)}, paths["beats"])
    return paths


def paper_overrides(paths: dict[str, Path]) -> list[str]:
    """`model=dynamicrafter_6fps` and its checkpoint paths, shrunk to the tiny width by config values."""
    return [
        "model=dynamicrafter_6fps",
        "model.paper_width=tiny",
        "model.context_dim=32",
        "model.latent_downsample=2",
        "data.frame_size=32",
        f"model.base_checkpoint={paths['base']}",
        f"audio.encoders.a.checkpoint={paths['imagebind']}",
        f"audio.encoders.a.dim={IMAGEBIND_DIM}",
        f"audio.encoders.b.checkpoint={paths['beats']}",
        "audio.encoders.b.dim=32",
    ]
