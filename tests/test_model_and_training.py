import torch

from asva.config.schema import DiffusionConfig, ModelConfig, StageConfig
from asva.data.dataset import ClipSet
from asva.data.loader import batch_indices
from asva.models.asva_model import ASVAModel, ImageToVideoBase
from asva.models.audio_encoders import TinyAudioEncoder
from asva.models.diffusion import noised_batch, training_scheduler
from asva.training.adapters import train_adapter_stage

SMALL = ModelConfig(channels=16, context_dim=32, heads=4)


def make_model(taps=(("a", 1), ("b", 0)), radius=1.5) -> ASVAModel:
    torch.manual_seed(0)
    base = ImageToVideoBase(SMALL)
    encoders = {
        name: TinyAudioEncoder(kind, 2, 32, 0.04, num_classes=3)
        for name, kind in (("a", "tiny_semantic"), ("b", "tiny_masked"))
    }
    return ASVAModel(base, encoders, list(taps), radius, fps=6, cfg=SMALL, fbank_frames=198)


def clips(n: int = 8) -> ClipSet:
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 255, (n, 12, 16, 16, 3), generator=g, dtype=torch.uint8)
    return ClipSet(
        video_ids=[str(i) for i in range(n)],
        labels=["drum"] * n,
        frames=frames,
        audio=torch.zeros(n, 32000),
        fbank=torch.randn(n, 198, 128, generator=g),
        event_times=[[1.0]] * n,
        classes=["drum"],
    )


def test_only_adapters_are_trainable_and_they_start_as_the_base_model():
    model = make_model()
    data = clips(2)
    trainable = {id(p) for p in model.adapter_parameters()}
    assert all(id(p) in trainable for p in model.parameters() if p.requires_grad)
    assert len(trainable) > 0 and all(not p.requires_grad for p in model.base.first_stage.parameters())
    audio = model.encode_audio(data.fbank)
    no = torch.zeros(2, dtype=torch.bool)
    cond = model.conditions(data.frames, audio, ["drum", "drum"], no, no, no)
    latents = model.base.encode_video(data.frames)
    noisy, t, _ = noised_batch(training_scheduler(DiffusionConfig()), latents, torch.Generator().manual_seed(0))
    with_adapters = model(noisy, t, cond)
    cond.audio = None
    base_only = model(noisy, t, cond)
    assert torch.equal(with_adapters, base_only)


def test_audio_tokens_carry_the_taps_and_their_times():
    model = make_model(taps=(("a", 0), ("a", 1), ("b", 1)))
    audio = model.encode_audio(torch.randn(2, 198, 128))
    per_encoder = 198 // 4
    assert set(audio.states) == {("a", 0), ("a", 1), ("b", 1)}
    assert audio.token_times.shape == (3 * per_encoder,)
    context = model.audio_context(audio, torch.zeros(2, dtype=torch.bool), num_frames=12)
    assert context.tokens.shape == (2, 3 * per_encoder, SMALL.context_dim)
    assert context.frame_mask.shape == (12, 3 * per_encoder)


def fixed_batch_loss(model: ASVAModel, data: ClipSet) -> float:
    """The denoising loss on fixed noise and timesteps, so that two calls are comparable."""
    generator = torch.Generator().manual_seed(42)
    keep = torch.zeros(len(data), dtype=torch.bool)
    with torch.no_grad():
        cond = model.conditions(data.frames, model.encode_audio(data.fbank), ["drum"] * len(data), keep, keep, keep)
        noisy, t, target = noised_batch(
            training_scheduler(DiffusionConfig()), model.base.encode_video(data.frames), generator
        )
        return torch.nn.functional.mse_loss(model(noisy, t, cond), target).item()


def test_adapter_training_decreases_the_loss_on_a_fixed_batch():
    model = make_model()
    data = clips(4)
    before = fixed_batch_loss(model, data)
    stage = StageConfig(lr=3e-3, batch_size=4, steps=20)
    losses = train_adapter_stage(model, data, stage, DiffusionConfig(cond_drop=0.0), seed=0, desc="test")
    assert len(losses) == 20
    assert fixed_batch_loss(model, data) < before


def test_adapter_training_leaves_the_frozen_parts_untouched():
    model = make_model()
    data = clips(4)
    frozen = {
        key: value.clone()
        for key, value in model.state_dict().items()
        if not key.startswith(("audio_projections.", "audio_cross_attn.")) and ".audio_cross_attn." not in key
    }
    assert any(key.startswith("base.unet.") for key in frozen) and any(key.startswith("encoders.") for key in frozen)
    train_adapter_stage(model, data, StageConfig(lr=1e-2, batch_size=4, steps=2), DiffusionConfig(), 0, "test")
    for key, value in frozen.items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_resumed_training_ends_with_the_same_weights(tmp_path):
    data = clips(6)
    stage = StageConfig(lr=3e-3, batch_size=4, steps=6, checkpoint_every=3)
    straight = make_model()
    train_adapter_stage(straight, data, stage, DiffusionConfig(), 0, "test")

    resumed = make_model()
    checkpoint = tmp_path / "ckpt.pt"
    half = StageConfig(lr=3e-3, batch_size=4, steps=3, checkpoint_every=3)
    train_adapter_stage(resumed, data, half, DiffusionConfig(), 0, "test", checkpoint_path=checkpoint)
    again = make_model()  # a new process: fresh model, state from the checkpoint
    train_adapter_stage(again, data, stage, DiffusionConfig(), 0, "test", checkpoint_path=checkpoint)
    for key, value in straight.adapter_state_dict().items():
        assert torch.equal(value, again.adapter_state_dict()[key]), key


def test_batches_cover_every_example_once_per_epoch():
    seen = torch.cat([batch_indices(step, 10, 4, seed=5) for step in range(3)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(batch_indices(1, 10, 4, seed=5), batch_indices(1, 10, 4, seed=5))
