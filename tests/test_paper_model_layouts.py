"""The paper model's checkpoints: the official key layouts of DynamiCrafter (model.ckpt), ImageBind and
BEATs load strictly, full size on the meta device and at test width with random weights, and a missing,
renamed or unknown key is named."""

from __future__ import annotations

import json
import math

import pytest
import torch
from paper_model_fixtures import (
    TINY_BEATS,
    TINY_RESAMPLER,
    TINY_UNET,
    TINY_UNET_SPEC,
    committed_listing,
    dynamicrafter_listing,
    encoder_listings,
    random_state,
)

from asva.errors import DataError
from asva.models import beats as beats_module
from asva.models.checkpoints import load_parts, split_checkpoint
from asva.models.dynamicrafter import DynamiCrafterUNet, Resampler, ResamplerSpec
from asva.models.imagebind import (
    ImageBindAudio,
    ImageBindVision,
    TrunkSpec,
    imagebind_audio_state,
    imagebind_vision_state,
    load_imagebind_audio,
)
from asva.models.paper_model import VARIANTS

# --- DynamiCrafter -------------------------------------------------------------------------------


def test_committed_listings_match_the_generator_and_carry_the_quirks():
    for variant, params in (("256", dynamicrafter_listing.UNET_256), ("512", dynamicrafter_listing.UNET_512)):
        listing = committed_listing(variant)
        assert listing == json.loads(json.dumps(dynamicrafter_listing.checkpoint_listing(params)))
        assert any(".temopral_conv." in key for key in listing)
    assert "model.diffusion_model.framestride_embed.0.weight" in committed_listing("256")
    assert "model.diffusion_model.fps_embedding.0.weight" in committed_listing("512")
    assert "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.alpha" in committed_listing("256")
    assert not any(key.endswith(".alpha") for key in committed_listing("512"))


@pytest.mark.parametrize("variant", ["256", "512"])
def test_official_full_size_layout_loads_strictly(variant):
    state = random_state(committed_listing(variant), device="meta")
    state["alphas_cumprod"] = torch.empty(1000, device="meta")  # schedule buffers are recognised and skipped
    with torch.device("meta"):
        unet, resampler = DynamiCrafterUNet(VARIANTS[variant]["unet"]), Resampler(ResamplerSpec())
    load_parts(state, {"unet": unet, "image_proj_model": resampler})
    weights = sum(math.prod(shape) for key, shape in committed_listing(variant).items() if key.startswith("model."))
    assert weights == sum(p.numel() for p in unet.parameters())
    assert abs(weights / 1.4e9 - 1) < 0.05


def test_a_renamed_missing_or_unknown_key_fails():
    listing = committed_listing("256")
    with torch.device("meta"):
        unet = DynamiCrafterUNet(VARIANTS["256"]["unet"])
    missing = dict(listing)
    del missing["model.diffusion_model.output_blocks.5.2.proj_out.weight"]
    renamed = {k.replace("attn1.to_q", "attn1.to_query"): v for k, v in listing.items()}
    unknown = {**listing, "ema.decay": []}
    for broken in (missing, renamed):
        with pytest.raises(DataError, match="part 'unet'"):
            load_parts(random_state(broken, device="meta"), {"unet": unet})
    with pytest.raises(DataError, match="no known part"):
        split_checkpoint(random_state(unknown, device="meta"))
    # The 512 UNet has no image-attention alpha: the 256 checkpoint does not fit it.
    with torch.device("meta"):
        unet_512 = DynamiCrafterUNet(VARIANTS["512"]["unet"])
    with pytest.raises(DataError, match="alpha"):
        load_parts(random_state(listing, device="meta"), {"unet": unet_512})


def test_tiny_unet_loads_the_official_layout_and_runs():
    listing = dynamicrafter_listing.checkpoint_listing(TINY_UNET, TINY_RESAMPLER)
    state = random_state(listing)
    unet = DynamiCrafterUNet(TINY_UNET_SPEC).eval()
    resampler = Resampler(ResamplerSpec(**TINY_RESAMPLER)).eval()
    load_parts(state, {"unet": unet, "image_proj_model": resampler})
    assert torch.equal(unet.fps_embedding[0].weight, state["model.diffusion_model.framestride_embed.0.weight"])
    assert torch.equal(
        unet.input_blocks[1][0].temporal_conv.conv4[3].weight,
        state["model.diffusion_model.input_blocks.1.0.temopral_conv.conv4.3.weight"],
    )
    frames = 4
    image_tokens = resampler(torch.randn(2, 5, TINY_RESAMPLER["embedding_dim"]))
    assert image_tokens.shape == (2, frames * 2, 32)
    context = torch.cat([torch.randn(2, 77, 32), image_tokens], dim=1)
    out = unet(torch.randn(2, 8, frames, 8, 8), torch.tensor([1, 900]), context, fs=torch.tensor([3, 3]))
    assert out.shape == (2, 4, frames, 8, 8)
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    assert len(unet.temporal_transformers()) == 2 + 2 + 1 + 3 + 3  # the full model has 16 (5+5+6)


def test_the_whole_official_model_ckpt_loads_strictly_on_meta():
    """Every entry of model.ckpt: UNet and Resampler (committed listing), the lvdm VAE (hand-written
    listing), the two OpenCLIP halves (open-clip-torch's own ViT-H-14 layout) and schedule buffers."""
    import open_clip

    from asva.models.paper_model import sd_vae

    listing = dict(committed_listing("256"))
    listing.update({f"first_stage_model.{k}": v for k, v in dynamicrafter_listing.first_stage_keys().items()})
    clip = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
    for key, value in clip.state_dict().items():
        if not key.startswith("visual."):
            listing[f"cond_stage_model.model.{key}"] = list(value.shape)
        if not key.startswith("transformer."):
            listing[f"embedder.model.{key}"] = list(value.shape)
    state = random_state(listing, device="meta")
    state.update(
        {name: torch.empty(1000, device="meta") for name in ("betas", "alphas_cumprod", "posterior_mean_coef1")}
    )
    with torch.device("meta"):
        text = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
        image = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
        del text.visual
        del image.transformer
        parts = {
            "unet": DynamiCrafterUNet(VARIANTS["256"]["unet"]),
            "first_stage_model": sd_vae(),
            "cond_stage_model": text,
            "embedder": image,
            "image_proj_model": Resampler(ResamplerSpec()),
        }
    load_parts(state, parts)
    vae_weights = sum(math.prod(v) for k, v in listing.items() if k.startswith("first_stage_model."))
    assert vae_weights == sum(p.numel() for p in parts["first_stage_model"].parameters())
    vae_state = {k: v for k, v in state.items() if k.startswith("first_stage_model.")}
    missing = dict(vae_state)
    del missing["first_stage_model.decoder.mid.attn_1.q.weight"]
    renamed = {
        k.replace("encoder.down.1.block.0.nin_shortcut", "encoder.down.1.block.0.skip"): v for k, v in vae_state.items()
    }
    for broken in (missing, renamed):
        with pytest.raises(DataError, match="first_stage_model"):
            load_parts(broken, {"first_stage_model": parts["first_stage_model"]})


def test_missing_dynamicrafter_checkpoint_is_named(tmp_path):
    from asva.models.paper_model import load_dynamicrafter_base

    with pytest.raises(DataError, match="model.base_checkpoint"):
        load_dynamicrafter_base("256", None)
    with pytest.raises(DataError, match=r"model\.ckpt"):
        load_dynamicrafter_base("256", str(tmp_path / "model.ckpt"))


# --- audio encoders ---------------------------------------------------------------------------------

TINY_IB_AUDIO = dict(dim=32, blocks=12, out_dim=16)
TINY_IB_VISION = dict(dim=32, blocks=2, out_dim=16, image=28, patch=14)


def test_imagebind_audio_tokens_times_and_strict_official_layout():
    official = random_state(
        {
            **encoder_listings.imagebind_audio_keys(**TINY_IB_AUDIO),
            **encoder_listings.imagebind_vision_keys(**TINY_IB_VISION),
            **encoder_listings.imagebind_other_modalities_sample(),
        }
    )
    audio = ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=4, out_dim=16))
    audio.load_state_dict(imagebind_audio_state(official), strict=True)
    vision = ImageBindVision(TrunkSpec(dim=32, blocks=2, heads=4, out_dim=16), image_size=28)
    vision.load_state_dict(imagebind_vision_state(official), strict=True)

    fbank = torch.randn(3, 198, 128) * 3 - 4
    hidden = audio.eval().hidden_states(fbank)
    assert len(hidden) == 12 and hidden[0].shape == (3, 229, 32)
    times = audio.token_times()
    assert times.shape == (229,)
    assert torch.allclose(times[1:20], 0.0875 + 0.1 * torch.arange(19, dtype=torch.float64))  # one frequency row
    assert torch.equal(times[1:20], times[20:39])
    embedding = audio.embed_audio(fbank)
    assert embedding.shape == (3, 16) and torch.allclose(embedding.norm(dim=-1), torch.ones(3))
    images = torch.randint(0, 256, (2, 40, 60, 3), dtype=torch.uint8)
    assert torch.allclose(vision.eval().embed_vision(images).norm(dim=-1), torch.ones(2))

    broken = dict(official)
    broken["modality_trunks.audio.blocks.0.attn.in_proj_w"] = broken.pop(
        "modality_trunks.audio.blocks.0.attn.in_proj_weight"
    )
    with pytest.raises(RuntimeError, match="in_proj"):
        audio.load_state_dict(imagebind_audio_state(broken), strict=True)


def test_imagebind_full_size_layout_on_meta_and_missing_file_message(tmp_path):
    listing = {**encoder_listings.imagebind_audio_keys(), **encoder_listings.imagebind_vision_keys()}
    state = random_state(listing, device="meta")
    with torch.device("meta"):
        audio, vision = ImageBindAudio(), ImageBindVision()
    audio.load_state_dict(imagebind_audio_state(state), strict=True, assign=True)
    vision.load_state_dict(imagebind_vision_state(state), strict=True, assign=True)
    with pytest.raises(DataError, match=r"imagebind_huge\.pth"):
        load_imagebind_audio(tmp_path / "imagebind_huge.pth")


def test_beats_tokens_times_and_strict_official_file(tmp_path):
    path = tmp_path / "BEATs_iter3.pt"
    torch.save({"cfg": TINY_BEATS, "model": random_state(encoder_listings.beats_keys(TINY_BEATS))}, path)
    model = beats_module.load_beats(path)
    assert not model.training
    hidden = model.hidden_states(torch.randn(2, 198, 128))
    assert len(hidden) == 12 and hidden[3].shape == (2, 96, 32)
    assert torch.isfinite(hidden[-1]).all()
    times = model.token_times(198)
    assert times.shape == (96,)
    assert torch.equal(times[:8], torch.full((8,), times[0].item(), dtype=torch.float64))  # 8 bands per step
    assert torch.allclose(times[::8], 0.0875 + 0.16 * torch.arange(12, dtype=torch.float64))

    model_state = random_state(encoder_listings.beats_keys(TINY_BEATS))
    del model_state["encoder.layers.5.self_attn.grep_a"]
    torch.save({"cfg": TINY_BEATS, "model": model_state}, path)
    with pytest.raises(RuntimeError, match="grep_a"):
        beats_module.load_beats(path)
    torch.save({"model": {}}, path)
    with pytest.raises(DataError, match="'cfg' and 'model'"):
        beats_module.load_beats(path)


def test_beats_full_size_layout_on_meta():
    cfg = beats_module.BEATsConfig.from_official(encoder_listings.BEATS_ITER3_CFG)
    with torch.device("meta"):
        model = beats_module.BEATs(cfg)
    model.load_state_dict(
        random_state(encoder_listings.beats_keys(encoder_listings.BEATS_ITER3_CFG), device="meta"),
        strict=True,
        assign=True,
    )
