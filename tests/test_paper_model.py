"""The paper model's parts at test width: the audio adapters, window masks on the encoders' real token
times, schedules and guidance, the DynamiCrafter base, sampling (tests/test_paper_model_layouts.py: its
checkpoints' layouts)."""

from __future__ import annotations

import pytest
import torch
from paper_model_fixtures import (
    TINY_BEATS,
    TINY_RESAMPLER,
    TINY_UNET,
    TINY_UNET_SPEC,
    dynamicrafter_listing,
    random_state,
    tiny_base,
)

from asva.models import beats as beats_module
from asva.models.adapters import AudioProjections, attach_dynamicrafter_audio_adapters
from asva.models.checkpoints import load_parts
from asva.models.dynamicrafter import DynamiCrafterUNet
from asva.models.imagebind import ImageBindAudio, TrunkSpec
from asva.models.tiny_unet import AudioContext
from asva.models.window_mask import frame_times, window_mask

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


# --- window masks on the encoders' real token times ---------------------------------------------------


def _visible(fps: int, radius: float, times: torch.Tensor) -> list[int]:
    return window_mask(frame_times(2 * fps, fps), times, radius, fps).sum(dim=1).tolist()


def test_window_masks_on_real_token_times():
    ib = ImageBindAudio(TrunkSpec(dim=8, blocks=1, heads=2, out_dim=8)).token_times()
    beats_times = beats_module.BEATs(beats_module.BEATsConfig.from_official(TINY_BEATS)).token_times(198)
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


def test_dynamicrafter_base_conditions_and_denoises_at_tiny_width():
    base = tiny_base()
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

    base = tiny_base()
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
    base = tiny_base()
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
    model = ASVAModel(tiny_base(), {"a": encoder}, [("a", 11)], 1.5, 6, settings, 198)
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
