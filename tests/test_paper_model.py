"""The paper model's parts: official key layouts load strictly, tiny forwards, adapters, window masks."""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from asva.errors import DataError
from asva.models import beats as beats_module
from asva.models.adapters import AudioProjections, attach_dynamicrafter_audio_adapters
from asva.models.checkpoints import load_parts, split_checkpoint
from asva.models.dynamicrafter import DynamiCrafterUNet, Resampler, ResamplerSpec, UNetSpec
from asva.models.imagebind import (
    ImageBindAudio,
    ImageBindVision,
    TrunkSpec,
    imagebind_audio_state,
    imagebind_vision_state,
    load_imagebind_audio,
)
from asva.models.paper_model import VARIANTS
from asva.models.tiny_unet import AudioContext
from asva.models.window_mask import frame_times, window_mask

LAYOUTS = Path(__file__).parent / "checkpoint_layouts"
sys.path.insert(0, str(LAYOUTS))
import dynamicrafter_listing  # noqa: E402  (official layouts, written without asva)
import encoder_listings  # noqa: E402

TINY_UNET = dict(
    dynamicrafter_listing.UNET_256,
    model_channels=32,
    channel_mult=[1, 2],
    attention_resolutions=[2, 1],
    num_head_channels=16,
    context_dim=32,
)
TINY_UNET_SPEC = UNetSpec(
    model_channels=32,
    channel_mult=(1, 2),
    attention_resolutions=(2, 1),
    num_head_channels=16,
    context_dim=32,
    image_tokens_per_frame=2,
)
TINY_RESAMPLER = dict(
    dim=32, depth=2, dim_head=8, heads=4, num_queries=2, embedding_dim=48, output_dim=32, ff_mult=2, video_length=4
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_state(listing: dict[str, list[int]], device: str = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if device == "meta":
        return {k: torch.empty(shape, device="meta") for k, shape in listing.items()}
    return {k: torch.randn(shape, generator=generator) * 0.05 for k, shape in listing.items()}


def committed_listing(variant: str) -> dict[str, list[int]]:
    with gzip.open(LAYOUTS / f"dynamicrafter_{variant}.json.gz", "rt") as handle:
        return json.load(handle)


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
            load_parts(random_state(broken, "meta"), {"unet": unet})
    with pytest.raises(DataError, match="no known part"):
        split_checkpoint(random_state(unknown, "meta"))
    # The 512 UNet has no image-attention alpha: the 256 checkpoint does not fit it.
    with torch.device("meta"):
        unet_512 = DynamiCrafterUNet(VARIANTS["512"]["unet"])
    with pytest.raises(DataError, match="alpha"):
        load_parts(random_state(listing, "meta"), {"unet": unet_512})


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
    image_tokens = resampler(torch.randn(2, 5, 48))
    assert image_tokens.shape == (2, frames * 2, 32)
    context = torch.cat([torch.randn(2, 77, 32), image_tokens], dim=1)
    out = unet(torch.randn(2, 8, frames, 8, 8), torch.tensor([1, 900]), context, fs=torch.tensor([3, 3]))
    assert out.shape == (2, 4, frames, 8, 8)
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    assert len(unet.temporal_transformers()) == 2 + 2 + 1 + 3 + 3  # the full model has 16 (5+5+6)


# --- audio adapters ---------------------------------------------------------------------------------


def _audio_context(tokens: int = 10, frames: int = 4, dim: int = 24) -> AudioContext:
    times = torch.linspace(0, 0.6, tokens)
    frame_t = frame_times(frames, 6)
    return AudioContext(
        tokens=torch.randn(2, tokens, dim), frame_mask=window_mask(frame_t, times, 1.5, 6), frame_times=frame_t
    )


def _tiny_inputs(frames: int = 4):
    torch.manual_seed(0)
    return torch.randn(2, 8, frames, 8, 8), torch.tensor([10, 700]), torch.randn(2, 77 + frames * 2, 32)


def test_adapters_start_as_the_frozen_model_and_only_they_get_gradients():
    unet = DynamiCrafterUNet(TINY_UNET_SPEC, dropout=0.0).eval()
    # A freshly built lvdm UNet outputs zeros (zero-initialised output layers): load "trained" weights.
    load_parts(random_state(dynamicrafter_listing.checkpoint_listing(TINY_UNET, TINY_RESAMPLER)), {"unet": unet})
    x, t, context = _tiny_inputs()
    with torch.no_grad():
        frozen = unet(x, t, context)
    unet.requires_grad_(False)
    adapters = attach_dynamicrafter_audio_adapters(unet, context_dim=24, head_channels=16)
    assert [a.norm.normalized_shape[0] for a in adapters] == [32, 32, 64, 64, 64, 64, 64, 64, 32, 32, 32]
    audio = _audio_context()
    adapted = unet(x, t, context, audio=audio)
    torch.testing.assert_close(adapted, frozen, rtol=0, atol=1e-6)  # step 0: the base model

    adapted.square().mean().backward()
    adapter_params = {id(p) for p in adapters.parameters()}
    for name, parameter in unet.named_parameters():
        if id(parameter) not in adapter_params:
            assert parameter.grad is None, name
    assert all(a.attn.to_out.weight.grad.abs().sum() > 0 for a in adapters)

    with torch.no_grad():  # once trained the audio path changes the output
        for adapter in adapters:
            adapter.attn.to_out.weight.normal_(0, 0.1)
        assert not torch.allclose(unet(x, t, context, audio=audio), frozen)


def test_projection_widths_give_the_papers_trainable_count():
    taps = [("a", 3), ("a", 7), ("a", 11), ("b", 3), ("b", 7), ("b", 11)]
    with torch.device("meta"):
        projections = AudioProjections(taps, {"a": 768, "b": 768}, 1024)
        unet = DynamiCrafterUNet()
        cross = attach_dynamicrafter_audio_adapters(unet, 1024)
    assert sum(p.numel() for p in projections.parameters()) == 6 * (768 * 1024 + 1024)
    widths = [a.norm.normalized_shape[0] for a in cross]
    assert sorted(widths) == [320] * 5 + [640] * 5 + [1280] * 6
    trainable = sum(p.numel() for p in projections.parameters()) + sum(p.numel() for p in cross.parameters())
    assert abs(trainable / 55e6 - 1) < 0.03


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
    state = random_state(listing, "meta")
    with torch.device("meta"):
        audio, vision = ImageBindAudio(), ImageBindVision()
    audio.load_state_dict(imagebind_audio_state(state), strict=True, assign=True)
    vision.load_state_dict(imagebind_vision_state(state), strict=True, assign=True)
    with pytest.raises(DataError, match=r"imagebind_huge\.pth"):
        load_imagebind_audio(tmp_path / "imagebind_huge.pth")


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
        random_state(encoder_listings.beats_keys(encoder_listings.BEATS_ITER3_CFG), "meta"), strict=True, assign=True
    )


# --- window masks on the encoders' real token times ---------------------------------------------------


def _visible(fps: int, radius: float, times: torch.Tensor) -> list[int]:
    return window_mask(frame_times(2 * fps, fps), times, radius, fps).sum(dim=1).tolist()


def test_window_masks_on_real_token_times():
    ib = ImageBindAudio(TrunkSpec(dim=8, blocks=1, heads=2, out_dim=8)).token_times()
    beats_times = beats_module.BEATs(
        beats_module.BEATsConfig(
            embed_dim=8,
            encoder_layers=1,
            encoder_embed_dim=8,
            encoder_ffn_embed_dim=8,
            encoder_attention_heads=2,
            conv_pos=4,
            conv_pos_groups=2,
        )
    ).token_times(198)
    # 6 FPS, r = 0.5: frame i's 167-ms chunk. ImageBind time columns are 100 ms apart (12 tokens each),
    # BEATs 160 ms (8). The CLS token, timed at the clip centre (1.03 s), falls in frame 6's chunk.
    assert _visible(6, 0.5, ib)[:7] == [12, 24, 24, 12, 24, 24, 12 + 1]
    assert _visible(6, 0.5, beats_times) == [8] * 12
    # r = 1.5 at 6 FPS: +-250 ms; frame 6 (t = 1.083 s) sees columns 0.8875 .. 1.2875 s and the CLS token.
    assert _visible(6, 1.5, ib)[6] == 5 * 12 + 1
    assert _visible(6, 1.5, beats_times)[6] == 3 * 8
    # r = 3 at 12 FPS: the same +-250 ms window as r = 1.5 at 6 FPS.
    assert _visible(12, 3.0, ib)[12] == _visible(6, 1.5, ib)[6]
    # 12 FPS, r = 0.5: +-42 ms, narrower than the token spacing: many frames see nothing at all.
    assert _visible(12, 0.5, beats_times).count(0) >= 12
    for fps, radius in ((6, 1.5), (6, 3.0), (12, 1.5), (12, 3.0)):
        assert min(_visible(fps, radius, ib)) > 0 and min(_visible(fps, radius, beats_times)) > 0


# --- schedules and guidance -------------------------------------------------------------------------


def test_dynamicrafter_schedules_and_nested_guidance():
    from asva.config.schema import DiffusionConfig
    from asva.models.diffusion import guided_prediction, sampling_scheduler, training_scheduler

    eps_256 = DiffusionConfig(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="epsilon"
    )
    scheduler = training_scheduler(eps_256)
    assert scheduler.betas[0].item() == pytest.approx(0.00085) and scheduler.betas[-1].item() == pytest.approx(0.012)
    v_512 = DiffusionConfig(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
    )
    assert training_scheduler(v_512).alphas_cumprod[-1].item() < 1e-6  # zero terminal SNR
    ddim = sampling_scheduler(v_512)
    assert len(ddim.timesteps) == 20 and ddim.timesteps[0].item() == 999  # trailing spacing starts at T

    e0, ei, eit, eita = (torch.full((1,), v) for v in (1.0, 2.0, 4.0, 8.0))
    cfg = DiffusionConfig(guidance_image=2.0, guidance_text=3.0, guidance_audio=4.0)
    # e0 + 2 (ei - e0) + 3 (eit - ei) + 4 (eita - eit) = 1 + 2 + 6 + 16
    assert guided_prediction(e0, ei, eit, eita, cfg).item() == 25.0


# --- the DynamiCrafter base at tiny width ---------------------------------------------------------


def _tiny_clip():
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    return open_clip.model.CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=2, width=32, head_width=16, patch_size=14, image_size=28),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    )


def _tiny_base():
    from diffusers import AutoencoderKL

    from asva.models.paper_model import DynamiCrafterBase, LatentCodec, OpenCLIPImage, OpenCLIPText

    torch.manual_seed(0)
    text_clip, image_clip = _tiny_clip(), _tiny_clip()
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
        f"cond_stage_model.model.{k}": v for k, v in _tiny_clip().state_dict().items() if not k.startswith("visual.")
    }
    official.update(
        {f"embedder.model.{k}": v for k, v in _tiny_clip().state_dict().items() if not k.startswith("transformer.")}
    )
    load_parts(official, {"cond_stage_model": text_clip, "embedder": image_clip})

    unet = DynamiCrafterUNet(TINY_UNET_SPEC).eval()
    load_parts(random_state(dynamicrafter_listing.checkpoint_listing(TINY_UNET, TINY_RESAMPLER)), {"unet": unet})
    resampler = Resampler(ResamplerSpec(**{**TINY_RESAMPLER, "embedding_dim": 32})).eval()
    return DynamiCrafterBase(
        unet, LatentCodec(vae, 0.18215), OpenCLIPText(text_clip), OpenCLIPImage(image_clip), resampler, 3
    ).eval()


def test_dynamicrafter_base_conditions_and_denoises_at_tiny_width():
    base = _tiny_base()
    frames = torch.randint(0, 256, (2, 4, 16, 16, 3), dtype=torch.uint8)
    keep = torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        cond = base.conditions(
            frames, ["a dog barks", "a hammer"], drop_image=keep, drop_text=torch.tensor([False, True])
        )
        assert cond.first_latent.shape == (2, 4, 1, 8, 8)
        assert cond.context.shape == (2, 77 + 4 * 2, 32)  # text tokens, then 2 image tokens per frame
        empty = base.text_encoder([""])
        assert torch.allclose(cond.context[1, :77], empty[0], atol=1e-5)
        assert not torch.allclose(cond.context[0, :77], empty[0], atol=1e-3)
        dropped = base.conditions(frames, ["a", "b"], drop_image=torch.tensor([True, True]), drop_text=keep)
        assert torch.allclose(dropped.context[0, 77:], dropped.context[1, 77:], atol=1e-5)  # both the zero image
        noisy = torch.randn(2, 4, 4, 8, 8)
        out = base(noisy, torch.tensor([5, 800]), cond)
        assert out.shape == noisy.shape and torch.isfinite(out).all()
        assert base.first_stage.decode(cond.first_latent).shape == (2, 1, 3, 16, 16)


def test_missing_dynamicrafter_checkpoint_is_named(tmp_path):
    from asva.models.paper_model import load_dynamicrafter_base

    with pytest.raises(DataError, match="model.base_checkpoint"):
        load_dynamicrafter_base("256", None)
    with pytest.raises(DataError, match=r"model\.ckpt"):
        load_dynamicrafter_base("256", str(tmp_path / "model.ckpt"))


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
    state = random_state(listing, "meta")
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


def test_imagebind_reads_the_projects_filterbank_exactly():
    from asva.data.audio import fbank
    from asva.models.imagebind import waveform_fbank

    waveform = torch.randn(2, 32000) * 0.1
    audio = ImageBindAudio(TrunkSpec(dim=16, blocks=2, heads=2, out_dim=8)).eval()
    with torch.no_grad():
        via_project = audio(fbank(waveform))
        direct = audio.hidden_states(waveform_fbank(waveform))
    torch.testing.assert_close(via_project[-1], direct[-1], rtol=1e-4, atol=1e-4)


def test_asva_model_on_the_dynamicrafter_base_samples_at_tiny_width():
    from asva.config.schema import DiffusionConfig, ModelConfig
    from asva.data.audio import fbank
    from asva.evaluation.sampling import denoise, latents_to_frames
    from asva.models.asva_model import ASVAModel

    base = _tiny_base()
    encoder = ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=4, out_dim=16)).eval()
    model = ASVAModel(
        base, {"a": encoder}, [("a", 3), ("a", 11)], 1.5, 6, ModelConfig(context_dim=32, heads=4), fbank_frames=198
    )
    assert len(model.audio_cross_attn) == 11
    assert sorted(p.requires_grad for p in model.parameters()) == [False] * (
        sum(1 for _ in model.parameters()) - len(model.adapter_parameters())
    ) + [True] * len(model.adapter_parameters())
    frames = torch.randint(0, 256, (1, 4, 16, 16, 3), dtype=torch.uint8)
    features = model.encode_audio(fbank(torch.randn(1, 32000) * 0.1))
    assert features.states[("a", 3)].shape == (1, 229, 32) and features.token_times.shape == (2 * 229,)
    cfg = DiffusionConfig(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="epsilon", sampling_steps=2
    )
    latents = denoise(model, frames, features, ["a drum"], cfg, torch.Generator().manual_seed(0))
    video = latents_to_frames(model, latents)
    assert video.shape == (1, 4, 16, 16, 3) and video.dtype == torch.uint8


# --- frame stride, DDIM eta, time encodings ---------------------------------------------------------


def test_frame_stride_input_follows_dynamicrafters_training_data():
    from asva.models.paper_model import frame_stride_input

    # 256: source frames per generated frame, to the nearest whole frame and at least one.
    assert frame_stride_input("256", None, 25.0, 6) == 4
    assert frame_stride_input("256", None, 30.0, 6) == 5
    assert frame_stride_input("256", None, 25.0, 12) == 2
    assert frame_stride_input("256", None, 4.0, 6) == 1
    assert frame_stride_input("512", None, 25.0, 12) == 12  # the 512 model conditions on the clip's fps
    assert frame_stride_input("256", 3, 25.0, 6) == 3  # model.frame_stride, when set, is used as it is


def test_the_frame_stride_reaches_the_unet():
    base = _tiny_base()
    frames = torch.randint(0, 256, (1, 4, 16, 16, 3), dtype=torch.uint8)
    keep = torch.zeros(1, dtype=torch.bool)
    noisy = torch.randn(1, 4, 4, 8, 8)
    outputs = []
    with torch.no_grad():
        cond = base.conditions(frames, ["a drum"], drop_image=keep, drop_text=keep)
        for stride in (4, 4, 5):
            base.frame_stride = stride
            outputs.append(base(noisy, torch.tensor([500]), cond))
    assert torch.equal(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])


def _tiny_asva_model(**model_settings):
    from asva.config.schema import ModelConfig
    from asva.data.audio import fbank
    from asva.models.asva_model import ASVAModel

    encoder = ImageBindAudio(TrunkSpec(dim=32, blocks=12, heads=4, out_dim=16)).eval()
    settings = ModelConfig(context_dim=32, heads=4, **model_settings)
    model = ASVAModel(_tiny_base(), {"a": encoder}, [("a", 11)], 1.5, 6, settings, 198)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (1, 4, 16, 16, 3), dtype=torch.uint8, generator=generator)
    return model, frames, model.encode_audio(fbank(torch.randn(1, 32000, generator=generator) * 0.1))


def test_ddim_eta_draws_its_noise_from_the_sampling_generator():
    from asva.config.schema import DiffusionConfig
    from asva.evaluation.sampling import denoise
    from asva.models.diffusion import ddim_step, sampling_scheduler

    model, frames, features = _tiny_asva_model()
    plain = DiffusionConfig(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="epsilon", sampling_steps=3
    )
    eta_one = DiffusionConfig(**{**plain.__dict__, "ddim_eta": 1.0})

    def run(cfg, seed: int, global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)  # the global RNG must play no part
        return denoise(model, frames, features, ["a drum"], cfg, torch.Generator().manual_seed(seed))

    first = run(eta_one, seed=0, global_seed=1)
    assert torch.equal(first, run(eta_one, seed=0, global_seed=2))
    assert not torch.allclose(first, run(eta_one, seed=1, global_seed=1))
    assert not torch.allclose(first, run(plain, seed=0, global_seed=1))  # eta = 1 adds noise at every step
    # eta = 0 draws nothing: the generator after the start noise is where it was (the embedded samples stay).
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    scheduler = sampling_scheduler(plain)
    latents = torch.randn(1, 4, 4, 8, 8)
    ddim_step(scheduler, torch.randn_like(latents), scheduler.timesteps[0], latents, 0.0, generator)
    assert torch.equal(generator.get_state(), state)


def test_the_time_encodings_are_settings_off_in_the_paper_architecture():
    from asva.models.tiny_unet import time_encoding

    keep = torch.zeros(1, dtype=torch.bool)
    for encoded in (False, True):
        model, _, features = _tiny_asva_model(frame_time_encoding=encoded, audio_time_encoding=encoded)
        context = model.audio_context(features, keep, num_frames=4)
        projected = model.audio_projections(features.states)
        expected = projected + time_encoding(features.token_times, 32) if encoded else projected
        torch.testing.assert_close(context.tokens, expected)
        block = model.audio_cross_attn[0]
        torch.nn.init.normal_(block.attn.to_out.weight)  # the zero-initialised output would hide the queries
        queries = torch.randn(4, 16, block.norm.normalized_shape[0])
        later = AudioContext(context.tokens, context.frame_mask, context.frame_times + 0.25)
        with torch.no_grad():
            moved = not torch.allclose(block(queries, context, 4), block(queries, later, 4))
        assert moved == encoded  # only an encoded query knows its frame's time
