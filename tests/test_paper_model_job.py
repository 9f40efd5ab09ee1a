"""A whole training job and generation on the paper model (DynamiCrafter + ImageBind + BEATs) at tiny width.

The checkpoints are random tensors in the official layouts (model.ckpt, imagebind_huge.pth, a BEATs
.pt), written from the listings under tests/checkpoint_layouts/, so the job takes exactly the path a
user with the public checkpoints takes: `model=dynamicrafter_6fps` plus the three paths.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_OVERRIDES, path_overrides
from paper_model_fixtures import TINY_BEATS, paper_overrides, write_checkpoints


@pytest.mark.slow  # about 2.5 min on the shared 2-core machine (most of it the tiny UNet sampling on one thread)
def test_a_training_job_runs_on_the_paper_model(tmp_path, session_store, monkeypatch):
    import mlflow

    from asva import experiment
    from asva.models.asva_model import ASVAModel
    from asva.models.beats import BEATs
    from asva.models.dynamicrafter import DynamiCrafterUNet
    from asva.models.imagebind import ImageBindAudio
    from asva.models.paper_model import DynamiCrafterBase, load_dynamicrafter_base
    from asva.params import load_config
    from asva.training import components

    paths = write_checkpoints(tmp_path)
    built: list[ASVAModel] = []

    class Recording(ASVAModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(components, "ASVAModel", Recording)
    small = ["train.finetune.batch_size=2", "eval.max_test_clips=2", "eval.batch_size=2", "study=paper_job"]
    cfg = load_config([*TINY_OVERRIDES, *path_overrides(tmp_path), *paper_overrides(paths), *small])
    metrics = experiment.run_job(cfg)

    [model] = built
    assert isinstance(model.base, DynamiCrafterBase) and isinstance(model.base.unet, DynamiCrafterUNet)
    assert isinstance(model.encoders["a"], ImageBindAudio) and isinstance(model.encoders["b"], BEATs)
    assert len(model.audio_cross_attn) == len(model.base.unet.temporal_transformers())
    assert metrics and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())

    client = mlflow.MlflowClient(tracking_uri=session_store)
    [run] = client.search_runs([client.get_experiment_by_name("paper_job").experiment_id])
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 2
    assert "event_sync" in run.data.metrics and "final_train_loss" in run.data.metrics
    # The paper presets sample no null-audio pass (eval.null_audio_control=false): no control metric.
    assert not [name for name in run.data.metrics if "null_audio" in name]
    assert run.data.params["cfg.model.name"] == "dynamicrafter"

    # Only the adapters changed: the frozen parts equal the files, the adapters left their start.
    fresh_base = load_dynamicrafter_base("256", str(paths["base"]), width="tiny")
    for key, value in fresh_base.state_dict().items():
        assert torch.equal(model.base.state_dict()[key], value), key
    from asva.models.beats import load_beats

    for key, value in load_beats(paths["beats"]).state_dict().items():
        assert torch.equal(model.encoders["b"].state_dict()[key], value), key
    start = Recording(
        fresh_base,
        {"a": model.encoders["a"], "b": model.encoders["b"]},
        model.taps,
        cfg.window_radius,
        cfg.data.fps,
        cfg.model,
        198,
    )
    start.reset_adapters(cfg.seed)
    trained, initial = model.adapter_state_dict(), start.adapter_state_dict()
    assert set(trained) == set(initial)
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)


def test_missing_paper_checkpoints_are_named_before_training(tmp_path, session_store):
    from asva.errors import DataError
    from asva.params import load_config
    from asva.training.components import audio_encoder, base_model

    paths = write_checkpoints(tmp_path)
    cfg = load_config([*path_overrides(tmp_path), *paper_overrides(paths), "model.base_checkpoint=null"])
    with pytest.raises(DataError, match="model.base_checkpoint"):
        base_model(cfg, None, tmp_path)
    cfg = load_config(
        [*path_overrides(tmp_path), *paper_overrides(paths), f"audio.encoders.b.checkpoint={tmp_path / 'gone.pt'}"]
    )
    with pytest.raises(
        DataError, match=r"audio.encoders.b.checkpoint: .*gone\.pt does not exist \(expected an official BEATs"
    ):
        audio_encoder("b", cfg.audio.encoders["b"], None, tmp_path)
    cfg = load_config([*path_overrides(tmp_path), *paper_overrides(paths), "audio.encoders.a.checkpoint=null"])
    with pytest.raises(DataError, match=r"imagebind_huge\.pth"):
        audio_encoder("a", cfg.audio.encoders["a"], None, tmp_path)
    # The encoder's file and the config's widths must agree.
    cfg = load_config([*path_overrides(tmp_path), *paper_overrides(paths), "audio.encoders.b.dim=768"])
    from asva.errors import ConfigError

    with pytest.raises(ConfigError, match="holds 12 layers of width 32"):
        audio_encoder("b", cfg.audio.encoders["b"], None, tmp_path)


def test_the_base_gets_the_frame_stride_of_the_source_and_clip_rates(tmp_path):
    """DynamiCrafter 256's fs input: source frames per generated frame (docs/paper_model.md)."""
    from asva.params import load_config
    from asva.training.components import base_model

    paths = write_checkpoints(tmp_path)
    cases = {(): 4, ("data.source_fps=36", "data.fps=12"): 3}
    for overrides, stride in cases.items():
        cfg = load_config([*path_overrides(tmp_path), *paper_overrides(paths), *overrides])
        assert base_model(cfg, None, tmp_path).frame_stride == stride, overrides


def test_beats_reads_its_own_front_end_from_the_waveform():
    """BEATs gets the waveform through BEATs.preprocess; ImageBind the project's filterbank."""
    from asva.config.schema import ModelConfig
    from asva.data.audio import fbank
    from asva.models import beats as beats_module
    from asva.models.asva_model import ASVAModel
    from asva.models.imagebind import ImageBindAudio, TrunkSpec

    torch.manual_seed(0)
    beats = beats_module.BEATs(beats_module.BEATsConfig.from_official(TINY_BEATS)).eval()
    imagebind = ImageBindAudio(TrunkSpec(dim=32, blocks=2, heads=2, out_dim=8)).eval()

    class NoBase(torch.nn.Module):  # encode_audio does not touch the base; the adapters need a UNet
        def __init__(self):
            super().__init__()
            from asva.models.tiny_unet import TinyVideoUNet

            self.unet = TinyVideoUNet(4, 16, [1], 2, 32)

    model = ASVAModel(
        NoBase(), {"a": imagebind, "b": beats}, [("a", 1), ("b", 5)], 1.5, 6, ModelConfig(context_dim=32, heads=2), 198
    )
    waveform = torch.randn(2, 32000) * 0.1
    features = model.encode_audio(fbank(waveform), waveform)
    with torch.no_grad():
        expected = beats.hidden_states(beats_module.waveform_fbank(waveform))[5]
    torch.testing.assert_close(features.states[("b", 5)], expected)
    assert features.states[("a", 1)].shape == (2, 229, 32) and features.states[("b", 5)].shape == (2, 96, 32)
    # At 48 kHz the waveform is resampled to 16 kHz first.
    high = torch.nn.functional.interpolate(waveform[:, None], scale_factor=3, mode="linear")[:, 0]
    assert model.encode_audio(fbank(waveform), high, sample_rate=48000).states[("b", 5)].shape == (2, 96, 32)
    with pytest.raises(ValueError, match="waveform"):
        model.encode_audio(fbank(waveform))
    null = model.null_audio(198)
    with torch.no_grad():
        zero = beats.hidden_states(torch.full((1, 198, 128), beats_module.FBANK_MEAN))[5]
    torch.testing.assert_close(null.states[("b", 5)], zero)
