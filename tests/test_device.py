"""Device and precision (train.device, train.precision; asva/models/placement.py), proved on the CPU.

- Every tensor of a training step and of sampling is on the model's device: the model is placed on
  PyTorch's `meta` device while the data stays on the host, and any op that meets a host tensor
  created in the wrong place fails ("Tensor on device cpu is not on the expected device meta").
- bf16-mixed trains the tiny model on the CPU: frozen weights in bf16, adapters in fp32, the loss falls.
- Gradient checkpointing gives the adapters the gradients they get without it.
"""

from __future__ import annotations

import pytest
import torch
from tiny_parts import RATE, random_clips, tiny_asva_model

from asva.config.schema import DataConfig, DiffusionConfig, ModelConfig, StageConfig
from asva.data.dataset import ClipSet
from asva.evaluation.sampling import denoise
from asva.models.asva_model import ASVAModel
from asva.models.paper_model import build_dynamicrafter_base
from asva.models.placement import Placement
from asva.training.adapters import StageClips, adapter_loss, train_adapter_stage


def tiny_model(base: str) -> ASVAModel:
    if base == "dynamicrafter":
        return tiny_asva_model(
            ModelConfig(name="dynamicrafter", context_dim=32),
            lambda cfg: build_dynamicrafter_base("256", width="tiny")[0],
        )
    return tiny_asva_model()


def first_batch_loss(model: ASVAModel, data: ClipSet, diffusion: DiffusionConfig, batch_size: int) -> torch.Tensor:
    """The loss of a stage's first step over `batch_size` of the clips."""
    source = StageClips(model, data, DataConfig(sample_rate=RATE))
    batch = next(iter(source.batches(batch_size, seed=0, data_parallel=False)(0, 1)))
    return adapter_loss(model, source, diffusion)(batch, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("base, size", [("tiny", 32), ("dynamicrafter", 64)])
def test_every_tensor_of_a_training_step_and_of_sampling_is_on_the_model_device(base, size):
    model = tiny_model(base).place(Placement(torch.device("meta"), None))
    data = random_clips(4, size)  # on the host, as a job's data is
    diffusion = DiffusionConfig(sampling_steps=2, cond_drop=0.5)  # dropped rows too: the null audio path
    loss = first_batch_loss(model, data, diffusion, 3)
    assert loss.device.type == "meta"
    loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.adapter_parameters())

    features = model.encode_audio(data.fbank[:2], data.audio[:2], RATE)
    latents = denoise(model, data.frames[:2], features, ["drum", "bell"], diffusion, torch.Generator().manual_seed(0))
    assert latents.device.type == "meta"
    assert model.base.first_stage.decode(latents).device.type == "meta"


def test_the_meta_check_catches_a_batch_left_on_the_host(monkeypatch):
    """The check above can fail: with the host-to-device copy of the batches skipped, it does."""
    monkeypatch.setattr(Placement, "to_device", lambda self, tensor: tensor)
    model = tiny_model("tiny").place(Placement(torch.device("meta"), None))
    data = random_clips(2, 32)
    with pytest.raises(RuntimeError, match="device"):
        first_batch_loss(model, data, DiffusionConfig(), 2)


def test_bf16_mixed_trains_the_tiny_model_on_the_cpu():
    model = tiny_model("tiny").place(Placement(torch.device("cpu"), torch.bfloat16))
    adapters = {id(p) for p in model.adapter_parameters()}
    assert {p.dtype for p in model.adapter_parameters()} == {torch.float32}  # fp32 master weights
    assert {p.dtype for p in model.parameters() if id(p) not in adapters} == {torch.bfloat16}  # frozen parts
    data = random_clips(8, 32)
    stage = StageConfig(lr=3e-3, batch_size=8, steps=40)
    losses = train_adapter_stage(
        model, data, stage, DiffusionConfig(cond_drop=0.0), seed=0, desc="bf16-mixed", data=DataConfig(sample_rate=RATE)
    )
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    assert {p.dtype for p in model.adapter_parameters()} == {torch.float32}


def test_gradient_checkpointing_gives_the_adapters_the_same_gradients():
    gradients = []
    for checkpointing in (False, True):
        model = tiny_model("tiny").place(Placement(torch.device("cpu"), None), gradient_checkpointing=checkpointing)
        for block in model.audio_cross_attn:  # non-zero outputs, so every adapter weight gets a gradient
            torch.nn.init.normal_(block.attn.to_out.weight, std=0.02)
        loss = first_batch_loss(model, random_clips(4, 32), DiffusionConfig(cond_drop=0.0), 3)
        loss.backward()
        gradients.append([p.grad.clone() for p in model.adapter_parameters()])
    assert all(grad.abs().sum() > 0 for grad in gradients[0])
    for plain, recomputed in zip(*gradients):
        torch.testing.assert_close(recomputed, plain, rtol=1e-5, atol=1e-7)


def test_the_gpu_check_runs_at_tiny_width_on_the_cpu():
    """benchmarks/gpu_check.py is ready for the first GPU: the same code runs here at test width."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu", "--steps", "1"],
        cwd=REPO,
        env=os.environ | {"OMP_NUM_THREADS": "1"},  # tiny widths: one torch thread, as in the other tests
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["device"] == "cpu" and report["precision"] == "bf16-mixed"
    assert [(s["batch"], s["gradient_checkpointing"]) for s in report["train_steps"]] == [(1, False), (1, True)]
    for setting in report["train_steps"]:
        assert setting["step_seconds"] > 0 and setting["tflop_per_step"] > 0
    # Recomputing the blocks costs FLOPs: checkpointing counts more of them per step.
    assert report["train_steps"][1]["tflop_per_step"] > report["train_steps"][0]["tflop_per_step"]
    assert report["sample"]["seconds"] > 0
