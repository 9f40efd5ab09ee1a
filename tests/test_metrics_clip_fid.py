"""IT with an OpenCLIP model loaded from a path, and FID through pytorch-fid's InceptionV3 from a path.

No downloads: a tiny open_clip model config and random Inception weights are built and saved here.
"""

import json

import numpy as np
import pytest
import torch

from asva.evaluation.embedders import text_frame_similarity
from asva.evaluation.sync_metrics import frame_similarity_score

TINY_ARCH = "asva-test-tiny-clip"


@pytest.fixture(scope="module")
def tiny_clip_checkpoint(tmp_path_factory):
    import open_clip

    root = tmp_path_factory.mktemp("clip")
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
    }
    (root / f"{TINY_ARCH}.json").write_text(json.dumps(config))
    open_clip.add_model_config(root / f"{TINY_ARCH}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_ARCH, pretrained=None)
    torch.save(model.state_dict(), root / "open_clip_pytorch_model.bin")
    return root / "open_clip_pytorch_model.bin", model.eval()


class KnownEmbeddings:
    """A TextVisionEmbedder whose embeddings are given: frames are looked up by their first pixel."""

    def __init__(self, text: dict[str, torch.Tensor], frames: torch.Tensor):
        self.text, self.frames = text, frames

    def embed_text(self, captions):
        return torch.stack([self.text[c] for c in captions])

    def embed_vision(self, frames):
        return self.frames[torch.as_tensor(frames)[:, 0, 0, 0].long()]


def test_it_is_100_times_the_mean_cosine_over_frames_after_the_first():
    s = 2**-0.5
    vision = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s], [-1.0, 0.0]])  # frame k has first pixel k
    embedder = KnownEmbeddings({"drum": torch.tensor([1.0, 0.0]), "bell": torch.tensor([0.0, 1.0])}, vision)
    frames = np.zeros((2, 3, 4, 4, 3), dtype=np.uint8)
    frames[0, :, 0, 0, 0] = [1, 0, 2]  # cos with "drum": 0, 1, s  (frame 1 skipped)
    frames[1, :, 0, 0, 0] = [0, 3, 1]  # cos with "bell": 0, 0, 1
    it = frame_similarity_score(text_frame_similarity(embedder, ["drum", "bell"], frames, 1, torch.device("cpu")))
    np.testing.assert_allclose(it, [100 * (1 + s) / 2, 100 * 0.5])


def test_open_clip_checkpoint_is_loaded_and_gives_clip_cosines(tiny_clip_checkpoint):
    from asva.evaluation.clip_score import OpenCLIPEmbedder, load_open_clip

    path, reference = tiny_clip_checkpoint
    embedder = OpenCLIPEmbedder(load_open_clip(path, TINY_ARCH), TINY_ARCH)
    for name, value in embedder.model.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[name])
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 3, 40, 48, 3), dtype=np.uint8)  # non-square: resized and centre-cropped
    captions = ["a dog barking", "church bell ringing"]
    it = frame_similarity_score(text_frame_similarity(embedder, captions, frames, 1, torch.device("cpu")))
    # By hand with the reference model: unit-norm encode_text / encode_image, cosine x100, frames 2..b.
    import open_clip

    with torch.no_grad():
        text = torch.nn.functional.normalize(
            reference.encode_text(open_clip.get_tokenizer(TINY_ARCH)(captions)), dim=-1
        )
        images = embedder.preprocess(frames.reshape(-1, 40, 48, 3))
        assert images.shape == (6, 3, 32, 32)
        vision = torch.nn.functional.normalize(reference.encode_image(images), dim=-1).reshape(2, 3, -1)
    expected = 100 * (vision[:, 1:] * text[:, None]).sum(-1).mean(1)
    np.testing.assert_allclose(it, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert np.all(np.abs(it) <= 100)


def test_missing_clip_checkpoint_names_the_path(tmp_path):
    from asva.evaluation.clip_score import load_open_clip

    missing = tmp_path / "nowhere" / "open_clip_pytorch_model.bin"
    with pytest.raises(FileNotFoundError, match="nowhere/open_clip_pytorch_model.bin"):
        load_open_clip(missing)


def _random_fid_inception_weights() -> dict:
    """The FID Inception's state dict with He-initialised convolutions, so features keep their scale."""
    from asva.evaluation.fid import fid_inception_architecture

    torch.manual_seed(0)
    net = fid_inception_architecture()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.state_dict()


def test_fid_inception_from_a_path_gives_2048_features_and_zero_for_identical_frames(tmp_path):
    from asva.evaluation.fid import FID_FEATURE_DIM, frame_features, load_fid_inception

    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(_random_fid_inception_weights(), path)
    model = load_fid_inception(path)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 2, 16, 16, 3), dtype=np.uint8)  # 4 frames, resized to 299 inside
    features = frame_features(model, frames)
    assert features.shape == (4, FID_FEATURE_DIM) and np.isfinite(features).all()
    assert np.abs(features[0] - features[1]).max() > 1e-2  # the random weights tell frames apart
    # The same set of frames in another order: the same features, so the same Gaussian (distance 0:
    # the full fid() with its 2048x2048 matrix square root is the slow test below, ~25 s on one core).
    swapped = frame_features(model, frames[::-1])  # clip 1's frames, then clip 0's
    np.testing.assert_allclose(np.concatenate([swapped[2:], swapped[:2]]), features, rtol=1e-4, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_fid_inception(tmp_path / "missing.pth")


def test_fid_features_are_pytorch_fids_inception_v3_features(tmp_path):
    """The project's extractor equals pytorch-fid's InceptionV3 (2048-d block) over the same network,
    bit for bit. InceptionV3 builds its network by downloading it, so here (and only here) that
    builder is patched to hand it the loaded one."""
    from unittest import mock

    from pytorch_fid import inception as pf

    from asva.evaluation.fid import fid_inception_architecture, load_fid_inception

    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(_random_fid_inception_weights(), path)
    net = fid_inception_architecture()
    net.load_state_dict(torch.load(path, weights_only=True))
    with mock.patch.object(pf, "fid_inception_v3", lambda: net):
        reference = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], use_fid_inception=True).eval()
    images = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_fid_inception(path)(images), reference(images)[0].flatten(1))


@pytest.mark.slow
def test_fid_is_zero_for_identical_frame_sets(tmp_path):
    from asva.evaluation.fid import fid, load_fid_inception

    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(_random_fid_inception_weights(), path)
    model = load_fid_inception(path)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 2, 16, 16, 3), dtype=np.uint8)
    same = fid(frames, frames[::-1], model, 1)
    # 0 up to the rounding of sqrtm on a rank-3 2048x2048 covariance (about 1e-6 here).
    assert same == pytest.approx(0.0, abs=1e-4)
    assert fid(frames, 255 - frames, model, 1) > 1e-2


def test_evaluation_networks_wire_the_checkpoints_in(tiny_clip_checkpoint, monkeypatch, tmp_path):
    from types import SimpleNamespace

    from asva.config.schema import EvalConfig, ExperimentConfig
    from asva.errors import ConfigError
    from asva.evaluation import networks
    from asva.evaluation.clip_score import OpenCLIPEmbedder
    from asva.evaluation.embedders import TinyCLIP

    tiny = TinyCLIP(dim=16, width=8)
    # The stand-ins are tested elsewhere; here only which network serves which metric, and its name.
    monkeypatch.setattr(networks, "_video_net", lambda *args: "video")
    monkeypatch.setattr(networks, "_tiny_clip", lambda *args: tiny)
    monkeypatch.setattr(networks, "_sync", lambda *args: ("sync", False))
    cfg = ExperimentConfig()
    train = SimpleNamespace(frames=torch.zeros(1, 2 * cfg.data.fps, 8, 8, 3, dtype=torch.uint8))
    train.decoded = lambda workers=0: train  # already in memory
    nets = networks.evaluation_networks(cfg, train, tmp_path)
    assert nets.text_vision is tiny and nets.fid_inception is None and nets.name("it") == "it_embedded"
    cfg.eval.networks.clip_checkpoint, cfg.eval.networks.clip_arch = str(tiny_clip_checkpoint[0]), TINY_ARCH
    for dataset, name in (("synthetic", "it_embedded"), ("vggsound", "it")):
        cfg.data.name = dataset
        nets = networks.evaluation_networks(cfg, train, tmp_path)
        assert isinstance(nets.text_vision, OpenCLIPEmbedder) and nets.audio_vision is tiny and nets.name("it") == name
    cfg.eval.networks.clip_checkpoint = str(tmp_path / "absent" / "open_clip_pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="absent/open_clip_pytorch_model.bin"):
        networks.evaluation_networks(cfg, train, tmp_path)
    with pytest.raises(ConfigError, match="^networks.fid_inception_checkpoint: eval.fid=true needs"):
        EvalConfig(fid=True)  # refused when the config is built, before any network is
