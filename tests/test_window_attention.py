"""Windowed audio cross-attention: each frame attends to its own window's keys only, and the result
equals attending to all of the clip's tokens under the window mask (the former implementation, kept
here as the reference)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from asva.models.adapters import AudioCrossAttention
from asva.models.tiny_unet import AudioContext, time_encoding
from asva.models.window_mask import frame_times, window_mask

CONTEXT_DIM = 48


def dense_masked_reference(
    block: AudioCrossAttention, tokens: torch.Tensor, audio: AudioContext, frames: int
) -> torch.Tensor:
    """The former implementation: every frame gets a copy of all N audio tokens, projects them to keys
    and values, and masks out those outside its window; a frame that sees nothing gets a zero."""
    attn = block.attn
    batch = tokens.shape[0] // frames
    audio_tokens = audio.tokens.repeat_interleave(frames, dim=0)  # [B*T, N, D]
    mask = audio.frame_mask.repeat(batch, 1)[:, None, None, :]  # [B*T, 1, 1, N]
    when = time_encoding(audio.frame_times, tokens.shape[-1]).repeat(batch, 1)[:, None, :]
    queries = block.norm(tokens) + when
    q, k, v = (
        proj(src).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
        for proj, src in ((attn.to_q, queries), (attn.to_k, audio_tokens), (attn.to_v, audio_tokens))
    )
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = torch.nan_to_num(out) * mask.any(dim=-1, keepdim=True)
    return attn.to_out(out.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[1], -1))


def _token_layout(imagebind_taps: int, beats_taps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Times and global flags of ImageBind taps (CLS + 12 x 19 patches) then BEATs taps (12 x 8)."""
    imagebind = torch.cat([torch.tensor([1.0275]), (0.0875 + 0.1 * torch.arange(19)).repeat(12)])
    beats = (0.0875 + 0.16 * torch.arange(12)).repeat_interleave(8)
    cls_first = torch.arange(len(imagebind)) == 0
    times = torch.cat([imagebind] * imagebind_taps + [beats] * beats_taps).double()
    flags = torch.cat([cls_first] * imagebind_taps + [torch.zeros(len(beats), dtype=torch.bool)] * beats_taps)
    return times, flags


def _audio_context(fps: int, radius: float, taps: tuple[int, int], batch: int) -> AudioContext:
    token_times, global_tokens = _token_layout(*taps)
    times = frame_times(2 * fps, fps)
    mask = window_mask(times, token_times, radius, fps) | global_tokens
    tokens = torch.randn(batch, len(token_times), CONTEXT_DIM)
    return AudioContext(tokens=tokens, frame_mask=mask, frame_times=times)


def _random_block(channels: int, heads: int) -> AudioCrossAttention:
    block = AudioCrossAttention(channels, heads, CONTEXT_DIM)
    block.attn.to_out.reset_parameters()  # starts at zero in the model; any weights will do here
    with torch.no_grad():
        block.norm.weight.normal_(1.0, 0.2)
        block.norm.bias.normal_(0.0, 0.2)
    return block


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("fps, taps", [(6, (2, 1)), (12, (2, 1)), (12, (0, 1))])
def test_windowed_attention_equals_the_dense_masked_one(radius, fps, taps):
    torch.manual_seed(0)
    frames, batch, channels = 2 * fps, 2, 32
    block = _random_block(channels, heads=4)
    audio = _audio_context(fps, radius, taps, batch)
    audio.tokens.requires_grad_(True)
    tokens = torch.randn(batch * frames, 6, channels, requires_grad=True)

    windowed = block(tokens, audio, frames)
    dense = dense_masked_reference(block, tokens, audio, frames)
    assert (windowed - dense).abs().max() <= 1e-5

    # The gradients (adapters are trained through this path) agree as well.
    probe = torch.randn_like(dense)
    grads = [
        torch.autograd.grad((out * probe).sum(), [tokens, audio.tokens, block.attn.to_k.weight])
        for out in (windowed, dense)
    ]
    for windowed_grad, dense_grad in zip(*grads):
        assert (windowed_grad - dense_grad).abs().max() <= 1e-5

    # A frame with an empty window (BEATs alone at 12 FPS, r <= 1, has some) attends to nothing: a zero
    # attention output, so only the output projection's bias remains, as before.
    empty = ~audio.frame_mask.any(dim=1)
    assert empty.any() == (taps == (0, 1) and radius <= 1.0)
    assert (windowed.detach().unflatten(0, (batch, frames))[:, empty] == block.attn.to_out.bias).all()


def test_frame_windows_list_each_frames_tokens_padded_to_the_widest():
    mask = torch.tensor([[True, False, True, False], [False, False, False, False], [False, True, True, True]])
    audio = AudioContext(tokens=torch.zeros(1, 4, 2), frame_mask=mask, frame_times=torch.zeros(3))
    assert audio.frame_windows.tolist() == [[0, 2, 4], [4, 4, 4], [1, 2, 3]]  # 4: padding
    assert audio.frame_windows is audio.frame_windows  # computed once per context


def test_the_window_width_not_the_clips_token_count_sizes_the_attention():
    """a:3-7-11+b:3-7-11 gives 975 tokens for 2 s; at 12 FPS, r = 0.5 a frame sees at most one ImageBind
    column (12 tokens) and one BEATs column (8) per tap, plus the 3 CLS tokens."""
    audio = _audio_context(12, 0.5, taps=(3, 3), batch=1)
    assert audio.tokens.shape[1] == 975
    assert audio.frame_windows.shape == (24, 3 * 12 + 3 * 8 + 3)
