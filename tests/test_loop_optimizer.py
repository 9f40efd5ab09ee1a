"""The training loop's optimizer settings: plain Adam by default (every stage of the project), AdamW's
decoupled weight decay and gradient clipping when a spec names them (AVSyncD's classifier recipe)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from asva.training.loop import LoopSpec, train_loop

INPUTS = torch.linspace(-1, 1, 24).reshape(6, 4)
TARGETS = torch.linspace(5, -5, 6)[:, None]


@contextlib.contextmanager
def observed_steps():
    """(optimizer, global L2 norm of its gradients) as each optimizer step sees them, after any clipping."""
    seen: list[tuple[torch.optim.Optimizer, float]] = []

    def before_step(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append((optimizer, float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))))

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        yield seen
    finally:
        handle.remove()


def linear_module() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


def fit(module: torch.nn.Module, spec: LoopSpec, scale: float = 1.0) -> list[float]:
    """A deterministic full-batch regression (far from its targets: large gradients)."""

    def loss(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return scale * torch.nn.functional.mse_loss(module(INPUTS), TARGETS)

    return train_loop(module, list(module.parameters()), loss, len(INPUTS), spec, seed=0, desc="fit")


def test_the_defaults_are_plain_adam_bit_for_bit():
    """What every stage gets (no weight decay, no clipping): the weights of torch.optim.Adam driven by
    hand, exactly, on gradients large enough that clipping at any norm near 1 would change them."""
    looped = linear_module()
    with observed_steps() as seen:
        losses = fit(looped, LoopSpec(lr=0.05, batch_size=len(INPUTS), steps=6), scale=100.0)
    assert all(type(optimizer) is torch.optim.Adam for optimizer, _ in seen)
    assert seen[0][0].param_groups[0]["weight_decay"] == 0
    assert min(norm for _, norm in seen) > 10  # unclipped
    by_hand = linear_module()
    adam = torch.optim.Adam(by_hand.parameters(), lr=0.05)
    expected = []
    for _ in range(6):
        loss = 100.0 * torch.nn.functional.mse_loss(by_hand(INPUTS), TARGETS)
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
        expected.append(loss.item())
    assert losses == expected
    for ours, theirs in zip(looped.parameters(), by_hand.parameters()):
        assert torch.equal(ours, theirs)


def test_max_grad_norm_clips_every_step_to_that_norm():
    with observed_steps() as unclipped:
        fit(linear_module(), LoopSpec(lr=0.01, batch_size=len(INPUTS), steps=5))
    assert min(norm for _, norm in unclipped) > 5  # the gradients this regression has
    with observed_steps() as clipped:
        fit(linear_module(), LoopSpec(lr=0.01, batch_size=len(INPUTS), steps=5, max_grad_norm=1.0))
    norms = [norm for _, norm in clipped]
    assert len(norms) == 5 and all(norm == pytest.approx(1.0, rel=1e-5) for norm in norms)


def test_weight_decay_is_adamws_decoupled_shrinkage():
    """With zero gradients Adam's update is 0, so AdamW only shrinks each weight by (1 - lr x decay) a
    step; Adam (the default) leaves it where it is."""
    lr, decay, steps = 0.1, 0.5, 10
    for weight_decay, factor in ((decay, (1 - lr * decay) ** steps), (None, 1.0)):
        module = linear_module()
        start = [p.detach().clone() for p in module.parameters()]

        def zero_gradient(idx: torch.Tensor, generator: torch.Generator, module=module) -> torch.Tensor:
            return 0.0 * sum(p.sum() for p in module.parameters())

        spec = LoopSpec(lr=lr, batch_size=2, steps=steps, weight_decay=weight_decay)
        with observed_steps() as seen:
            train_loop(module, list(module.parameters()), zero_gradient, 6, spec, seed=0, desc="decay")
        expected_type = torch.optim.AdamW if weight_decay is not None else torch.optim.Adam
        assert type(seen[0][0]) is expected_type
        for before, after in zip(start, module.parameters()):
            assert torch.allclose(after, before * factor, rtol=1e-5, atol=0)
