"""FVD, the evaluation protocol and the RelSync/AlignSync/IA formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_parts import tiny_eval_networks

from asva.config.schema import DataConfig
from asva.data.media import write_video
from asva.errors import DataError
from asva.evaluation.frechet import frechet_distance
from asva.evaluation.fvd import I3D_SIZE, fvd, load_i3d, preprocess
from asva.evaluation.protocol import at_eval_fps, clip_starts, evaluation_clips
from asva.evaluation.sync_metrics import alignsync, frame_similarity_score, p_align, relsync


def test_frechet_distance_of_identical_sets_is_zero():
    features = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_mean_shift_is_its_squared_norm():
    features = np.random.default_rng(1).normal(size=(300, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    # Same covariance: the trace term vanishes and d^2 = ||shift||^2 exactly.
    assert frechet_distance(features, features + shift) == pytest.approx(float((shift**2).sum()), rel=1e-6)
    assert frechet_distance(features, features + 2 * shift) == pytest.approx(4 * float((shift**2).sum()), rel=1e-6)


def test_frechet_distance_of_a_scaled_set_follows_the_closed_form():
    features = np.random.default_rng(2).normal(size=(400, 4))
    features -= features.mean(axis=0)
    sigma = np.cov(features, rowvar=False)
    # S_f = 4 S_r: Tr(S + 4S - 2 * 2S) = Tr(S).
    assert frechet_distance(features, 2 * features) == pytest.approx(float(np.trace(sigma)), rel=1e-6)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


class _ScriptedI3D(torch.nn.Module):
    """A stand-in with the signature of StyleGAN-V's I3D TorchScript: a fixed random projection."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        assert not rescale and not resize and return_features
        assert x.shape[1] == 3 and x.shape[3] == 224 and x.shape[4] == 224
        pooled = torch.nn.functional.adaptive_avg_pool3d(x, (4, 1, 1)).flatten(1)  # [B, 3*4]
        return self.proj(pooled)


def test_i3d_torchscript_loads_from_a_path_and_gives_fvd(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(_ScriptedI3D()).save(str(path))
    net = load_i3d(path)
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(6, 12, 32, 32, 3), dtype=np.uint8)
    brighter = np.clip(real.astype(int) + 60, 0, 255).astype(np.uint8)
    assert net.features(preprocess(real[:2], I3D_SIZE)).shape == (2, 400)
    assert fvd(real, real, net, 4, torch.device("cpu")) == pytest.approx(0.0, abs=1e-6)
    assert fvd(real, brighter, net, 4, torch.device("cpu")) > 1.0


def test_i3d_preprocessing_resizes_to_224_and_maps_to_minus_one_one():
    videos = np.full((2, 12, 32, 32, 3), 255, dtype=np.uint8)
    videos[:, :, :, :, 0] = 0
    out = preprocess(videos, I3D_SIZE)
    assert out.shape == (2, 3, 12, 224, 224)
    assert torch.allclose(out[:, 0], torch.tensor(-1.0)) and torch.allclose(out[:, 1], torch.tensor(1.0))


def test_missing_i3d_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="i3d_checkpoint"):
        load_i3d(tmp_path / "absent.pt")


@pytest.mark.parametrize(
    "duration, expected",
    [(2.0, [0.0]), (3.0, [0.0, 0.5, 1.0]), (5.0, [0.0, 1.5, 3.0]), (10.0, [0.0, 4.0, 8.0]), (2.3, [0.0, 0.15, 0.3])],
)
def test_three_clip_starts_are_evenly_spaced(duration, expected):
    assert clip_starts(duration, 2.0, 3) == pytest.approx(expected)


def test_a_video_shorter_than_a_clip_has_no_start():
    with pytest.raises(DataError):
        clip_starts(1.5, 2.0, 3)


def test_twelve_fps_clips_are_compared_at_six_by_taking_every_other_frame():
    frames = np.arange(24).reshape(1, 24, 1, 1, 1) * np.ones((1, 1, 2, 2, 3), dtype=np.int64)
    assert at_eval_fps(frames, 12)[0, :, 0, 0, 0].tolist() == list(range(0, 24, 2))
    assert at_eval_fps(frames, 6) is not None and at_eval_fps(frames, 6).shape[1] == 24
    with pytest.raises(ValueError):
        at_eval_fps(frames, 8)


def test_evaluation_clips_cut_three_clips_from_a_longer_video(tmp_path):
    # 3 s at 6 FPS; frame i has grey level 10 * i, so a clip's first frame tells its start.
    frames = np.stack([np.full((32, 32, 3), 10 * i, dtype=np.uint8) for i in range(18)])
    audio = np.zeros(3 * 16000, dtype=np.float32)
    write_video(tmp_path / "videos" / "drum" / "v0.mp4", frames, 6, audio, 16000)
    (tmp_path / "classes.txt").write_text("drum\n")
    (tmp_path / "test.txt").write_text("drum/v0.mp4\n")
    (tmp_path / "manifest.csv").write_text("video_id,event_times\nv0,0.7 2.6\n")
    clips = evaluation_clips(tmp_path, "test", DataConfig(), tmp_path / "cache", count=3)
    assert clips.video_ids == ["v0_clip-0", "v0_clip-1", "v0_clip-2"]
    assert clips.frames.shape == (3, 12, 32, 32, 3)
    first_levels = clips.frames[:, 0].float().mean(dim=(1, 2, 3)).tolist()
    assert first_levels == pytest.approx([0, 30, 60], abs=3)  # starts 0, 0.5 and 1.0 s
    assert clips.event_times == [pytest.approx([0.7]), pytest.approx([0.2]), pytest.approx([1.6])]


def test_relsync_and_alignsync_of_the_ground_truth_are_100():
    phi = np.array([-3.0, 0.0, 2.5, 10.0])
    assert relsync(phi, phi) == pytest.approx(np.full(4, 100.0))
    ia = np.tile(np.array([[0.3], [0.1], [-0.2], [0.5]]), (1, 12))  # every frame as aligned as the first
    assert p_align(ia, ia[:, 0]) == pytest.approx(np.full(4, 0.5))
    assert alignsync(phi, phi, ia, ia[:, 0]) == pytest.approx(np.full(4, 100.0))


def test_relsync_follows_eq2_and_alignsync_eq4():
    phi_gt, phi_gen = np.array([1.0]), np.array([0.0])
    expected = np.exp(0.0) / (np.exp(1.0) + np.exp(0.0))
    assert relsync(phi_gen, phi_gt) == pytest.approx(200 * expected)
    ia_frames = np.array([[0.9, 0.2, 0.4]])  # frame 1 is left out
    ia_first = np.array([0.3])
    align = np.mean([np.exp(x) / (np.exp(x) + np.exp(0.3)) for x in (0.2, 0.4)])
    assert p_align(ia_frames, ia_first) == pytest.approx([align])
    assert alignsync(phi_gen, phi_gt, ia_frames, ia_first) == pytest.approx(400 * align * expected)
    assert frame_similarity_score(ia_frames) == pytest.approx([100 * 0.3])


def test_worse_synchronized_clips_score_lower():
    phi_gt = np.zeros(3)
    assert (np.diff(relsync(np.array([1.0, 0.0, -5.0]), phi_gt)) < 0).all()


def test_stand_in_networks_report_embedded_names_and_reference_rows():
    from asva.evaluation.paper_metrics import paper_scores, per_class_rows

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(6, 12, 32, 32, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, size=(6, 12, 32, 32, 3), dtype=np.uint8)
    scores = paper_scores(
        tiny_eval_networks(), real, torch.randn(6, 198, 128), ["drum"] * 6, generated, fps=6, batch_size=4
    )
    expected = {
        f"{m}_embedded{tail}"
        for m in ("ia", "it", "relsync", "alignsync")
        for tail in ("", "_ref_groundtruth", "_ref_static")
    }
    expected |= {"fvd_embedded", "fvd_embedded_ref_static"}
    assert set(scores.metrics) == expected
    assert scores.metrics["relsync_embedded_ref_groundtruth"] == pytest.approx(100.0)
    # The static reference repeats the first frame, so P_Align is exactly 1/2 there.
    assert scores.metrics["alignsync_embedded_ref_static"] == pytest.approx(
        scores.metrics["relsync_embedded_ref_static"]
    )
    rows = per_class_rows(["drum"] * 3 + ["bell"] * 3, scores.per_clip)
    assert {row["class"] for row in rows} == {"drum", "bell"} and all(row["clips"] == 3 for row in rows)


def test_reserved_names_only_with_the_papers_networks():
    assert tiny_eval_networks(paper=False).name("fvd") == "fvd_embedded"
    paper = tiny_eval_networks(paper=True)
    assert [paper.name(m) for m in ("fvd", "ia", "it", "relsync", "alignsync")] == [
        "fvd",
        "ia",
        "it",
        "relsync",
        "alignsync",
    ]
    paper.paper_ia = False  # AlignSync needs ImageBind as well as the classifier
    assert paper.name("relsync") == "relsync" and paper.name("alignsync") == "alignsync_embedded"
    small = tiny_eval_networks(paper=True)
    small.sync_suffix = "_asva"  # the project's small classifier trained on real data
    assert [small.name(m) for m in ("relsync", "alignsync", "ia")] == ["relsync_asva", "alignsync_asva", "ia"]


def _clips(frames: np.ndarray, event_times: list[list[float]]):
    from asva.data.dataset import ClipSet

    count = len(frames)
    return ClipSet(
        video_ids=[f"v{i}" for i in range(count)],
        labels=["drum"] * count,
        frames=torch.from_numpy(frames),
        audio=torch.zeros(count, 32000),
        fbank=torch.zeros(count, 198, 128),
        event_times=event_times,
        classes=["drum"],
    )


def test_metrics_the_clips_cannot_score_are_skipped_with_the_reason():
    from asva.config.schema import ExperimentConfig
    from asva.evaluation.frechet import TOO_FEW_CLIPS
    from asva.evaluation.paper_metrics import paper_scores
    from asva.evaluation.scoring import NO_EVENT_TIMES, skeleton_metrics

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(3, 12, 32, 32, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, size=(3, 12, 32, 32, 3), dtype=np.uint8)
    candidates = {"": generated, "_ref_groundtruth": real}
    cfg = ExperimentConfig()

    # Event times on one clip of three: event_sync is its mean over the clips that have them.
    metrics, skipped = skeleton_metrics(_clips(real, [[], [1.0], []]), candidates, cfg)
    assert set(metrics) == {"event_sync", "event_sync_ref_groundtruth", "fd_pixel_synth"} and skipped == {}

    # A real dataset: no event times at all (an event on frame 0 is no onset to score either).
    metrics, skipped = skeleton_metrics(_clips(real, [[], [0.0], []]), candidates, cfg)
    assert set(metrics) == {"fd_pixel_synth"}
    assert skipped == {"event_sync": NO_EVENT_TIMES, "event_sync_ref_groundtruth": NO_EVENT_TIMES}

    # One clip: no Fréchet distance (a covariance needs two), neither of pixels nor FVD.
    metrics, skipped = skeleton_metrics(_clips(real[:1], [[1.0]]), {"": generated[:1]}, cfg)
    assert set(metrics) == {"event_sync"} and skipped == {"fd_pixel_synth": TOO_FEW_CLIPS}
    scores = paper_scores(
        tiny_eval_networks(), real[:1], torch.randn(1, 198, 128), ["drum"], generated[:1], fps=6, batch_size=4
    )
    assert not {name for name in scores.metrics if name.startswith("fvd")}
    assert scores.skipped == {"fvd_embedded": TOO_FEW_CLIPS, "fvd_embedded_ref_static": TOO_FEW_CLIPS}


def test_the_skipped_metrics_are_one_log_line_grouped_by_reason(caplog):
    from asva.evaluation.scoring import log_skipped

    with caplog.at_level("INFO", logger="asva.evaluation.scoring"):
        log_skipped({}, "evaluation of synthetic")
        log_skipped(
            {"event_sync": "no events", "fd_pixel_synth": "one clip", "event_sync_ref_static": "no events"},
            "evaluation of avsync15",
        )
    assert caplog.messages == [
        "evaluation of avsync15: not computed: event_sync, event_sync_ref_static (no events); fd_pixel_synth (one clip)"
    ]
