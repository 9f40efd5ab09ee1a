"""`python -m asva.params`: the paper model's parameter accounting, built on the meta device."""

from __future__ import annotations

import json

import pytest

from asva.params import counts, load_config, main


def test_paper_model_counts_match_the_paper():
    result = counts(load_config(["model=dynamicrafter_6fps"]))
    assert result["audio_layers"] == "a:3-7-11+b:3-7-11"  # the paper's final model
    assert result["audio_cross_attention_blocks"] == 16
    assert abs(result["trainable"] / 55e6 - 1) < 0.03
    assert abs(result["unet"] / 1.4e9 - 1) < 0.05
    assert abs(result["trainable"] / result["total"] - 0.019) < 0.002
    assert result["trainable"] == result["adapter_projections"] + result["adapter_cross_attention"]
    assert result["adapter_projections"] == 6 * (768 * 1024 + 1024)


def test_audio_layer_presets_change_the_projections_only():
    ib11 = counts(load_config(["model=dynamicrafter_12fps", "audio_layers=ib11"]))
    best = counts(load_config(["model=dynamicrafter_12fps", "audio_layers=ib3-7-11+beats3-7-11"]))
    assert ib11["audio_layers"] == "a:11"
    assert best["trainable"] - ib11["trainable"] == 5 * (768 * 1024 + 1024)
    assert best["unet"] == ib11["unet"]


def test_cli_prints_one_json_line_and_rejects_bad_values(capsys):
    assert main([]) == 0  # the embedded tiny model
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and json.loads(line[0])["model"] == "tiny"
    assert main(["model=dynamicrafter_6fps", "model.variant=384"]) == 2
    assert "model.variant" in capsys.readouterr().err


@pytest.mark.parametrize("preset,spec", [("ib7-9-11", "a:7-9-11"), ("ib3-7-11", "a:3-7-11")])
def test_presets_map_to_the_audio_layers_format(preset, spec):
    assert load_config([f"audio_layers={preset}"]).audio_layers == spec


def test_each_feature_set_of_the_encoder_layer_grid_adds_one_projection_per_tap():
    """Fig. 4a's grid (sweeps/conf/encoder_layers.yaml) on the embedded model, counted without training."""
    cfg = load_config([])
    per_tap = cfg.audio.encoders["a"].dim * cfg.model.context_dim + cfg.model.context_dim  # a linear projection
    grid = ("a:11", "a:7-9-11", "a:3-7-11", "a:3-7-11+b:3-7-11")
    trainable = {layers: counts(load_config([f"audio_layers={layers}"]))["trainable"] for layers in grid}
    assert trainable["a:7-9-11"] - trainable["a:11"] == 2 * per_tap
    assert trainable["a:3-7-11"] == trainable["a:7-9-11"]  # the same number of taps, spread wider
    assert cfg.audio.encoders["b"].dim == cfg.audio.encoders["a"].dim
    assert trainable["a:3-7-11+b:3-7-11"] - trainable["a:3-7-11"] == 3 * per_tap
