"""IA, IT, RelSync and AlignSync from per-clip scores, exactly as the papers define them.

Inputs are per clip n: the classifier scores phi(a, v_gt) and phi(a, v_gen) (asva/evaluation/
sync_classifier.py) and the cosine similarities of the audio (or caption) embedding with every frame
(asva/evaluation/embedders.py). Following the released ASVA evaluation, the first generated frame is
left out of IA, IT and P_Align: it is (nearly) a copy of the conditioning image.

- IA (asva-eccv2024.txt Sec. 3.2): 100 x the mean over frames i = 2..b of cos(E_audio(a), E_vision(v_gen_i)),
  ImageBind embeddings; IT the same with the caption's CLIP text embedding. Mean over clips.
- RelSync (asva-eccv2024.txt Eq. 2):
      RelSync(a, v_gen, v) = exp(phi(a, v_gen)) / (exp(phi(a, v)) + exp(phi(a, v_gen)))
- P_Align (Eq. 3), with IA the raw cosine (the released code feeds it unscaled):
      P_Align(a, v_gen, v_1) = 1/(b-1) sum_{i=2..b} exp(IA(a, v_gen_i)) / (exp(IA(a, v_gen_i)) + exp(IA(a, v_1)))
  where v_1 is the conditioning (ground-truth first) frame and b the number of generated frames.
- AlignSync (Eq. 4):  AlignSync = P_Align * RelSync.
- Rescaling (scaling-up-asva.txt Sec. 5.1): RelSync x2 and AlignSync x4, then x100, so that the
  ground truth, whose RelSync is exactly 1/2 and whose P_Align is about 1/2, scores 100.

Every function returns per-clip values; the reported metric is their mean over the clips.
"""

from __future__ import annotations

import numpy as np

RELSYNC_RESCALE = 2.0
ALIGNSYNC_RESCALE = 4.0


def _softmax_second(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """exp(second) / (exp(first) + exp(second)), computed stably."""
    return 1.0 / (1.0 + np.exp(np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)))


def relsync(phi_generated: np.ndarray, phi_groundtruth: np.ndarray) -> np.ndarray:
    """Eq. 2, rescaled to 0-100: 100 * 2 * exp(phi_gen) / (exp(phi_gt) + exp(phi_gen)), per clip."""
    return 100.0 * RELSYNC_RESCALE * _softmax_second(phi_groundtruth, phi_generated)


def p_align(ia_generated_frames: np.ndarray, ia_first_frame: np.ndarray) -> np.ndarray:
    """Eq. 3 per clip, in [0, 1].

    ia_generated_frames [N, b]: cosine of the audio with each generated frame (frame 1 is skipped);
    ia_first_frame [N]: cosine of the audio with the conditioning image v_1.
    """
    frames = np.asarray(ia_generated_frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] < 2:
        raise ValueError(f"p_align needs [N, b >= 2] per-frame similarities, got shape {frames.shape}")
    return _softmax_second(np.asarray(ia_first_frame, dtype=np.float64)[:, None], frames[:, 1:]).mean(axis=1)


def alignsync(
    phi_generated: np.ndarray, phi_groundtruth: np.ndarray, ia_generated_frames: np.ndarray, ia_first_frame: np.ndarray
) -> np.ndarray:
    """Eq. 4, rescaled to 0-100: 100 * 4 * P_Align * RelSync (RelSync here before its own rescaling)."""
    unscaled_relsync = _softmax_second(phi_groundtruth, phi_generated)
    return 100.0 * ALIGNSYNC_RESCALE * p_align(ia_generated_frames, ia_first_frame) * unscaled_relsync


def frame_similarity_score(similarity_frames: np.ndarray) -> np.ndarray:
    """IA or IT per clip: 100 x mean cosine over frames 2..b of [N, b] similarities."""
    frames = np.asarray(similarity_frames, dtype=np.float64)
    return 100.0 * frames[:, 1:].mean(axis=1)
