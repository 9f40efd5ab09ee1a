"""`python -m asva.generate`: one image and one sound in, an mp4 with that sound out."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from asva.data.media import write_wav
from asva.generate import build_model, main
from asva.params import load_config

SMALL = [
    "data.synthetic.train_per_class=2",
    "data.synthetic.test_per_class=1",
    "data.synthetic.pool_per_class=2",
    "model.base_train_steps=2",
    "audio.encoders.a.train_steps=2",
    "diffusion.sampling_steps=2",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    Image.fromarray((np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)).save(folder / "image.png")
    t = np.arange(3 * 44100) / 44100  # 3 s, stereo, 44.1 kHz
    write_wav(
        folder / "stereo.wav",
        (0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 97 * t)])).astype(np.float32),
        44100,
    )
    write_wav(folder / "short.wav", np.zeros(16000, dtype=np.float32), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    return folder


def decode(path) -> tuple[np.ndarray, int, float]:
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        audio = container.streams.audio[0]
        return frames, audio.rate, float(audio.duration * audio.time_base)


def test_generates_an_mp4_with_the_audio_and_adapters_change_it(inputs, tmp_path):
    common = [
        f"image={inputs / 'image.png'}",
        f"audio={inputs / 'stereo.wav'}",
        "text=a drum",
        f"paths.cache_dir={inputs / 'cache'}",
        *SMALL,
    ]
    assert main([*common, f"out={tmp_path / 'base.mp4'}"]) == 0
    frames, rate, seconds = decode(tmp_path / "base.mp4")
    assert frames.shape == (12, 32, 32, 3)  # 2 s at 6 FPS, data.frame_size
    assert rate == 16000 and seconds == pytest.approx(2.0, abs=0.1)

    cfg = load_config([f"paths.cache_dir={inputs / 'cache'}", *SMALL])
    model = build_model(cfg, fbank_frames=198)
    model.reset_adapters(1)
    with torch.no_grad():
        for block in model.audio_cross_attn:
            block.attn.to_out.weight.normal_(0, 1.0)
    torch.save({"weights": model.adapter_state_dict()}, tmp_path / "adapters.pt")
    assert main([*common, f"adapters={tmp_path / 'adapters.pt'}", f"out={tmp_path / 'adapted.mp4'}"]) == 0
    adapted, _, _ = decode(tmp_path / "adapted.mp4")
    assert np.abs(adapted.astype(int) - frames.astype(int)).mean() > 1.0


@pytest.mark.parametrize(
    "audio,image,message",
    [
        ("broken.wav", "image.png", "unreadable audio"),
        ("short.wav", "image.png", "has 1.00 s; need 2 s"),
        ("missing.wav", "image.png", "does not exist"),
        ("stereo.wav", "broken.wav", "not a readable image"),
    ],
)
def test_bad_inputs_fail_with_one_line(inputs, tmp_path, capsys, audio, image, message):
    code = main(
        [
            f"image={inputs / image}",
            f"audio={inputs / audio}",
            f"out={tmp_path / 'x.mp4'}",
            f"paths.cache_dir={tmp_path}",
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_out_must_be_mp4_and_inputs_are_required(capsys):
    assert main(["image=a.png", "audio=b.wav", "out=c.avi"]) == 2
    assert main(["image=a.png"]) == 2
    assert "audio, out: required" in capsys.readouterr().err


def test_generates_on_the_paper_model_from_its_checkpoint_paths(inputs, tmp_path, capsys):
    """model=dynamicrafter_6fps at tiny width, every frozen part read from official-layout files."""
    from paper_model_fixtures import paper_overrides, write_checkpoints

    paths = write_checkpoints(tmp_path)
    common = [
        f"image={inputs / 'image.png'}",
        f"audio={inputs / 'stereo.wav'}",
        "text=a drum",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "diffusion.sampling_steps=2",
        *paper_overrides(paths),
    ]
    assert main([*common, f"out={tmp_path / 'paper.mp4'}"]) == 0
    frames, rate, seconds = decode(tmp_path / "paper.mp4")
    assert frames.shape == (12, 32, 32, 3)
    assert rate == 16000 and seconds == pytest.approx(2.0, abs=0.1)
    assert not (tmp_path / "cache").exists()  # nothing trained, no data generated: the files are the model

    assert (
        main([*common, f"model.base_checkpoint={tmp_path / 'absent' / 'model.ckpt'}", f"out={tmp_path / 'x.mp4'}"]) == 2
    )
    assert "absent/model.ckpt does not exist (expected the official model.ckpt" in capsys.readouterr().err
