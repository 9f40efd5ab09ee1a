"""`experiment=paper_6fps` / `paper_12fps`: the paper's whole setting in one word, on every entry point
whose config is a job's, and a warning when the paper model is trained with the embedded recipe.
`experiment=paper` of sweeps/curate.py and sweeps/train_sync_classifier.py: their own presets."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace

import pytest
from conftest import REPO, path_overrides
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from asva.config.commands import CurateConfig, TrainSyncClassifierConfig
from asva.config.schema import AVSyncDClassifierConfig, CurationConfig, ExperimentConfig
from asva.config.store import register
from asva.config.validate import paper_recipe_warning

# Every entry point whose config is an experiment (sweeps/conf/<name>.yaml).
JOB_CONFIGS = ["window_radius", "encoder_layers", "kshot", "curation", "search", "evaluate"]


def composed(config: str, overrides: list[str]) -> ExperimentConfig:
    """The typed config of sweeps/conf/<config>.yaml; a preset's real benchmark gets a (never read) root, an
    evaluation the run it evaluates."""
    register()
    if any(override.startswith("experiment=") for override in overrides):
        overrides = ["data.root=/benchmark", *overrides]
    if config == "evaluate":
        overrides = ["run_id=any", *overrides]
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name=config, overrides=overrides))


def test_paper_6fps_sets_the_papers_model_recipe_curation_and_evaluation():
    cfg = composed("base", ["experiment=paper_6fps"])
    model, data, train = cfg.model, cfg.data, cfg.train
    assert (model.name, model.variant, model.context_dim) == ("dynamicrafter", "256", 1024)
    assert cfg.audio_layers == "a:3-7-11+b:3-7-11"
    assert (cfg.audio.encoders["a"].kind, cfg.audio.encoders["b"].kind) == ("imagebind", "beats")
    assert not model.frame_time_encoding and not model.audio_time_encoding  # the papers' cross-attention
    assert (data.name, data.fps, data.frame_size, data.clip_seconds) == ("avsync15", 6, 256, 2.0)
    assert data.pool_format == "vggsound"
    # Section 5.1: stage 1 for 30 epochs, batch 32, lr 1e-4; finetuning 500 epochs, batch 16, lr 5e-5.
    assert cfg.pretrain and cfg.finetune
    pretrain, finetune = train.pretrain, train.finetune
    assert (pretrain.epochs, pretrain.batch_size, pretrain.lr, pretrain.steps) == (30, 32, 1e-4, None)
    assert (finetune.epochs, finetune.batch_size, finetune.lr, finetune.steps) == (500, 16, 5e-5, None)
    diffusion = cfg.diffusion
    guidance = (diffusion.guidance_image, diffusion.guidance_text, diffusion.guidance_audio)
    assert diffusion.sampling_steps == 20 and guidance == (2, 2, 4)
    assert diffusion.ddim_eta == 1.0 and diffusion.prediction_type == "epsilon"
    assert cfg.eval.paper_metrics and not cfg.eval.null_audio_control
    filters = cfg.curation_filters  # the paper's four filters at the footage thresholds, no extra filter
    assert filters.metadata and filters.scenes and filters.flow and filters.text
    assert (filters.scene_threshold, filters.min_side) == (27.0, 256)
    assert (filters.max_frame_interval_spread, filters.min_audio_rms, filters.min_flow) == (None, 0.0, 0.0)
    assert paper_recipe_warning(cfg) is None


def test_paper_12fps_differs_from_paper_6fps_only_in_the_frame_rate():
    six = asdict(composed("base", ["experiment=paper_6fps"]))
    twelve = asdict(composed("base", ["experiment=paper_12fps"]))
    assert twelve["data"].pop("fps") == 12 and six["data"].pop("fps") == 6
    assert twelve == six
    # The 12-FPS model preset is the 6-FPS one at 12 FPS, whichever way it is selected.
    model_only = asdict(composed("base", ["model=dynamicrafter_12fps"]))
    assert model_only["data"]["fps"] == 12 and model_only["model"] == twelve["model"]


@pytest.mark.parametrize("config", JOB_CONFIGS)
def test_every_job_entry_point_takes_the_preset_and_keeps_its_study(config):
    plain, paper = composed(config, []), composed(config, ["experiment=paper_6fps"])
    assert paper.model.name == "dynamicrafter" and paper.train.finetune.epochs == 500
    assert paper.curation_filters.min_flow == 0.0 and paper.diffusion.ddim_eta == 1.0
    assert paper.study == plain.study
    if config in ("window_radius", "curation"):  # what the study fixes wins over the preset's feature set
        assert paper.audio_layers == plain.audio_layers == "a:11"
    if config in ("encoder_layers", "curation"):
        assert paper.window_radius == plain.window_radius == 0.5
    if config == "curation":
        assert paper.pretrain


def test_a_misspelled_preset_fails_while_composing():
    with pytest.raises(Exception, match="paper_6f"):
        composed("base", ["experiment=paper_6f"])


def test_the_paper_model_with_the_embedded_recipe_warns_naming_the_preset(tmp_path, caplog):
    from asva.experiment import check_before_compute

    for fps in (6, 12):
        cfg = composed("base", [f"model=dynamicrafter_{fps}fps"])
        assert f"experiment=paper_{fps}fps" in paper_recipe_warning(cfg)
        assert "train.finetune.steps=200" in paper_recipe_warning(cfg)
    assert paper_recipe_warning(composed("base", [])) is None  # the embedded model's own recipe
    cfg = composed("base", ["model=dynamicrafter_6fps", *path_overrides(tmp_path)])
    with caplog.at_level(logging.WARNING, logger="asva"):
        check_before_compute(cfg)  # what every job runs before any compute
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("experiment=paper_6fps" in message for message in warnings)


def test_the_paper_curation_keeps_what_only_the_extra_filters_reject(tmp_path):
    """Silent, still and variable-frame-rate clips: rejected by the project's extra filters, kept when
    they are off as in the `paper` preset (its other thresholds are the footage ones, for 256-px video)."""
    from test_curation import clip, write, write_vfr

    from asva.data import curation

    frames, audio = clip()
    videos = {
        "silent": write(tmp_path / "silent.mp4", frames, 0 * audio),
        "still": write(tmp_path / "still.mp4", frames[:1].repeat(len(frames), axis=0), audio),
    }
    write_vfr(tmp_path / "vfr.mp4")
    videos["vfr"] = curation.Video("vfr", "drum", str(tmp_path / "vfr.mp4"))
    paper = composed("base", ["curation_filters=paper"]).curation_filters
    extras_off = {key: getattr(paper, key) for key in ("max_frame_interval_spread", "min_audio_rms", "min_flow")}
    embedded = replace(CurationConfig(), workers=1, text=False)
    for name, video in videos.items():
        assert curation.examine(video, embedded).rejected, name
        assert curation.examine(video, replace(embedded, **extras_off)).kept, name


def test_curate_paper_is_the_papers_four_filters_over_vggsound_without_avsync15_test_footage():
    cfg = composed("curate", ["experiment=paper", "input=/videos"])
    filters = cfg.filters
    assert filters == composed("base", ["curation_filters=paper"]).curation_filters
    assert filters.metadata and filters.scenes and filters.flow and filters.text
    assert (filters.scene_threshold, filters.min_side) == (27.0, 256)  # camera footage
    assert (filters.max_frame_interval_spread, filters.min_audio_rms, filters.min_flow) == (None, 0.0, 0.0)
    assert (cfg.input, cfg.vggsound_csv) == ("/videos", "vggsound.csv")  # VGGSound's release CSV in its folder
    assert (cfg.data.name, cfg.data.root, cfg.data.leak_check_against) == ("avsync15", "/benchmark", None)
    assert cfg.study == composed("curate", []).study


def test_train_sync_classifier_paper_is_avsyncds_classifier_and_recipe_at_12_fps():
    from asva.evaluation.avsync_classifier import paper_recipe

    cfg = composed("train_sync_classifier", ["experiment=paper"])
    recipe = cfg.classifier.avsyncd
    assert cfg.classifier.kind == "avsyncd" and recipe == AVSyncDClassifierConfig() and paper_recipe(asdict(recipe))
    assert (recipe.weight_decay, recipe.max_grad_norm, recipe.lr, recipe.steps) == (0.01, 1.0, 2e-4, 40000)
    data = cfg.data
    assert (data.name, data.root, data.decode) == ("avsync15", "/benchmark", "memory")  # VGGSS, whole videos
    assert (data.fps, data.frame_size) == (12, 224)


def test_the_entry_points_presets_stay_their_own():
    with pytest.raises(Exception, match="Could not find 'experiment/paper'"):
        composed("window_radius", ["experiment=paper"])
    assert composed("curate", []).filters == CurationConfig()  # no preset unless asked for
    assert composed("train_sync_classifier", []).classifier.kind == "asva_small"


@pytest.mark.parametrize(
    ("config", "schema", "given", "key"),
    [
        ("curate", CurateConfig, [], "data.root"),
        ("curate", CurateConfig, ["data.root=/benchmark"], "vggsound_csv"),  # "needs input"
        ("train_sync_classifier", TrainSyncClassifierConfig, [], "data.root"),
    ],
)
def test_a_preset_without_its_inputs_fails_in_one_line_naming_the_key_before_compute(
    capsys, config, schema, given, key
):
    from asva import cli

    register()
    with initialize_config_dir(config_dir=str(REPO / "sweeps" / "conf"), version_base="1.3"):
        cfg = compose(config_name=config, overrides=["experiment=paper", *given])

    def compute(typed):
        raise AssertionError("computed with an incomplete config")

    with pytest.raises(SystemExit) as exited:
        cli.run_command(cfg, schema, compute)  # what the entry point's main runs
    [line] = capsys.readouterr().err.splitlines()
    assert exited.value.code == 2 and line.startswith(f"error: {key}: ")
    assert key != "vggsound_csv" or "needs input" in line
