"""The audio front-end shared by every encoder: Kaldi filterbanks as ImageBind and BEATs compute them."""

from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi

MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
# ImageBind's audio normalisation constants (dataset mean and std of the log-mel filterbank).
FBANK_MEAN = -4.268
FBANK_STD = 9.138


def fbank(audio: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """[N, S] waveforms -> [N, frames, 128] normalised log-mel filterbanks (198 frames for 2 s)."""
    features = []
    for waveform in audio:
        waveform = waveform - waveform.mean()
        bank = kaldi.fbank(
            waveform[None, :].float(),
            sample_frequency=sample_rate,
            num_mel_bins=MEL_BINS,
            frame_length=FRAME_LENGTH_MS,
            frame_shift=FRAME_SHIFT_MS,
            htk_compat=True,
            use_energy=False,
            window_type="hanning",
            dither=0.0,
        )
        features.append((bank - FBANK_MEAN) / (2 * FBANK_STD))
    return torch.stack(features)


def fbank_frames(seconds: float, sample_rate: int = 16000) -> int:
    """How many filterbank frames `fbank` gives for `seconds` of sound (Kaldi's snip_edges framing)."""
    samples = round(seconds * sample_rate)
    length, shift = round(FRAME_LENGTH_MS * sample_rate / 1000), round(FRAME_SHIFT_MS * sample_rate / 1000)
    return 1 + (samples - length) // shift


def frame_times(num_frames: int) -> torch.Tensor:
    """Centre time (s) of each filterbank frame."""
    return torch.arange(num_frames) * FRAME_SHIFT_MS / 1000 + FRAME_LENGTH_MS / 2000
