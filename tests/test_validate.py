"""An impossible value fails when its config is built, before any compute, with one line naming its full
key: each dataclass of asva/config/schema.py checks its own fields in `__post_init__`, a parent the
fields of two groups, and asva/config/build.py names the key from the config's root. What depends on
the machine (files, device) is asva/config/validate.py's, called by every entry point that computes."""

from __future__ import annotations

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from asva.config.build import build_config
from asva.config.checks import FieldError
from asva.config.commands import CurateConfig
from asva.config.schema import (
    CurationConfig,
    DataConfig,
    EvalConfig,
    EvalNetworksConfig,
    ExperimentConfig,
    StageConfig,
    SyncClassifierConfig,
)
from asva.config.store import register
from asva.config.validate import check_files_and_device
from asva.errors import ConfigError

CONF = REPO / "sweeps" / "conf"


def composed(config: str, overrides: list[str]):
    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config, overrides=overrides)


# (entry point config, overrides, the whole message): one or more impossible values of every group.
IMPOSSIBLE = [
    ("base", ["window_radius=-1"], "window_radius: must be > 0, got -1.0"),
    ("base", ["k=-2"], "k: must be >= 0 or 'all', got -2"),
    ("base", ["k=some"], "k: must be a whole number >= 0 or 'all', got 'some'"),
    ("base", ["curation=manual"], "curation: must be auto or none, got 'manual'"),
    (
        "base",
        ["pretrain=false", "finetune=false"],
        "finetune: with pretrain=false and finetune=false nothing would be trained",
    ),
    ("base", ["audio_layers=c:1"], "audio_layers: unknown encoder 'c' in 'c:1' (known: a, b)"),
    ("base", ["data.decode=x"], "data.decode: must be auto, stream or memory, got 'x'"),
    ("base", ["data.name=avsync15"], "data.root: dataset 'avsync15' needs the path of its folder"),
    ("base", ["data.fps=8"], "data.fps: must be 6 or 12, got 8"),
    ("base", ["data.source_fps=0"], "data.source_fps: must be > 0, got 0.0"),
    ("base", ["data.num_workers=-1"], "data.num_workers: must be >= 0, got -1"),
    (
        "base",
        ["data.synthetic.video_seconds=1.5"],
        "data.synthetic.video_seconds: 1.5 is shorter than one clip (data.clip_seconds=2.0)",
    ),
    (
        "base",
        ["data.synthetic.openclass_per_class=-1"],
        "data.synthetic.openclass_per_class: must be an integer >= 0, got -1",
    ),
    (
        "base",
        ["data.synthetic.pool_text_fraction=1.5"],
        "data.synthetic.pool_text_fraction: must be within [0, 1], got 1.5",
    ),
    ("base", ["curation_filters.workers=0"], "curation_filters.workers: must be >= 1, got 0"),
    ("base", ["curation_filters.flow_quantile=2"], "curation_filters.flow_quantile: must be within [0, 1], got 2.0"),
    (
        "base",
        ["curation_filters.raft_variant=huge"],
        "curation_filters.raft_variant: must be small or large, got 'huge'",
    ),
    (
        "base",
        ["curation_filters.max_frame_interval_spread=0"],
        "curation_filters.max_frame_interval_spread: must be > 0 (or null), got 0.0",
    ),
    (
        "base",
        ["curation_filters.min_audio_rms=-1"],
        "curation_filters.min_audio_rms: must be >= 0 (0: not checked), got -1.0",
    ),
    (
        "base",
        ["audio.encoders.a.kind=wav2vec"],
        "audio.encoders.a.kind: must be tiny_semantic, tiny_masked, imagebind or beats, got 'wav2vec'",
    ),
    ("base", ["audio.encoders.b.token_seconds=0"], "audio.encoders.b.token_seconds: must be > 0, got 0.0"),
    ("base", ["+audio.encoders={c:{kind:tiny_semantic}}"], "audio.encoders: unknown encoder 'c' (known: a, b)"),
    ("base", ["model.name=unet"], "model.name: must be tiny or dynamicrafter, got 'unet'"),
    ("base", ["model.variant=1024"], "model.variant: must be 256 or 512, got '1024'"),
    ("base", ["model.frame_stride=0"], "model.frame_stride: must be > 0 (or null), got 0"),
    ("base", ["model.heads=5"], "model.heads: 5 does not divide model.context_dim=64"),
    ("base", ["diffusion.ddim_eta=1.5"], "diffusion.ddim_eta: must be within [0, 1], got 1.5"),
    ("base", ["diffusion.sampling_steps=0"], "diffusion.sampling_steps: must be within 1..1000, got 0"),
    (
        "base",
        ["diffusion.beta_schedule=cosine"],
        "diffusion.beta_schedule: must be linear, scaled_linear or squaredcos_cap_v2, got 'cosine'",
    ),
    ("base", ["train.device=tpu"], "train.device: must be auto, cpu or cuda, got 'tpu'"),
    ("base", ["train.precision=fp16"], "train.precision: must be auto, fp32 or bf16-mixed, got 'fp16'"),
    ("base", ["train.pretrain.epochs=3"], "train.pretrain: set exactly one of epochs and steps (the other to null)"),
    ("base", ["train.finetune.lr=0"], "train.finetune.lr: must be > 0, got 0.0"),
    ("base", ["eval.batch_size=0"], "eval.batch_size: must be > 0, got 0"),
    ("base", ["eval.networks.lr=0"], "eval.networks.lr: must be > 0, got 0.0"),
    (
        "base",
        ["eval.networks.video_net_widths=[]"],
        "eval.networks.video_net_widths: needs at least one width, all > 0, got []",
    ),
    (
        "base",
        ["eval.networks.sync_classifier.kind=vggsoundsync"],
        "eval.networks.sync_classifier.kind: must be asva_small or avsyncd, got 'vggsoundsync'",
    ),
    (
        "base",
        ["eval.networks.sync_classifier.avsyncd.widths=[8,16,32]"],
        "eval.networks.sync_classifier.avsyncd.widths: four stage widths > 0, the last even, got [8, 16, 32]",
    ),
    ("base", ["tracking.backend=postgres"], "tracking.backend: must be sqlite or server, got 'postgres'"),
    (
        "base",
        ["tracking.backend=server"],
        "tracking.uri: the server backend needs the server's http(s) address, got None",
    ),
    # Checks of a parent over two of its groups.
    (
        "base",
        ["audio_layers=a:12"],
        "audio_layers: layer 12 of encoder 'a' does not exist (audio.encoders.a.num_layers = 12)",
    ),
    ("base", ["data.frame_size=36"], "data.frame_size: 36 is not a multiple of model.latent_downsample=8"),
    ("base", ["data.sample_rate=8000"], "data.sample_rate: the audio encoders expect 16000 Hz, got 8000"),
    (
        "base",
        ["eval.networks.sync_classifier.window_seconds=2"],
        "eval.networks.sync_classifier.window_seconds: a 2 s window shifted by up to 0.34 s each way "
        "does not fit in a 2 s clip",
    ),
    (
        "base",
        ["eval.networks.sync_classifier.kind=avsyncd"],
        "eval.networks.sync_classifier.checkpoint: kind avsyncd needs the released classifier folder "
        "(.../checkpoint-40000/modules) or a file from sweeps/train_sync_classifier.py classifier.kind=avsyncd",
    ),
    (
        "base",
        ["eval.fid=true"],
        "eval.networks.fid_inception_checkpoint: eval.fid=true needs pytorch-fid's pt_inception-2015-12-05-6726825d.pth",
    ),
    # Each entry point's own settings.
    ("prepare", ["shards=0"], "shards: must be >= 1, got 0"),
    ("prepare", ["shard=2", "shards=2"], "shard: must be within 0..1 (shards=2), got 2"),
    ("prepare", ["latent_dtype=bfloat16"], "latent_dtype: must be float16 or float32, got 'bfloat16'"),
    ("prepare", ["sets=[test]"], "sets: must name some of train, pool, got ['test']"),
    ("evaluate", [], "run_id / checkpoint: give exactly one of them"),
    ("evaluate", ["run_id=abc", "clips_per_video=0"], "clips_per_video: must be >= 1, got 0"),
    ("curate", ["shards=0"], "shards: must be >= 1, got 0"),
    ("curate", ["vggsound_csv=vggsound.csv"], "vggsound_csv: needs input, the folder of VGGSound's clips"),
    ("curate", ["filters.max_flow=0"], "filters.max_flow: must be > 0, got 0.0"),
    ("curate", ["filters.text_detector=ocr"], "filters.text_detector: must be craft or tesseract, got 'ocr'"),
    ("train_sync_classifier", ["classifier.steps=0"], "classifier.steps: must be > 0, got 0"),
    ("train_sync_classifier", ["data.fps=8"], "data.fps: must be 6 or 12, got 8"),
    (
        "train_sync_classifier",
        ["classifier.checkpoint=sync.pt"],
        "classifier.checkpoint: this script trains a classifier; name where to save it with output=",
    ),
    (
        "train_sync_classifier",
        ["classifier.window_seconds=2"],
        "classifier.window_seconds: a 2 s window shifted by up to 0.34 s each way does not fit in a 2 s clip",
    ),
    (
        "train_sync_classifier",
        ["classifier.kind=avsyncd", "classifier.avsyncd.num_clips=1"],
        "classifier.avsyncd.num_clips: must be >= 2 (a synchronized and a shifted clip), got 1",
    ),
]


@pytest.mark.parametrize(
    ("config", "overrides", "message"), IMPOSSIBLE, ids=[" ".join([c, *o]) for c, o, _ in IMPOSSIBLE]
)
def test_an_impossible_value_fails_the_build_with_one_line_naming_its_full_key(config, overrides, message):
    with pytest.raises(ConfigError) as raised:
        build_config(composed(config, overrides))
    assert str(raised.value) == message


def test_omegaconf_passes_a_nested_error_through_unwrapped_naming_its_own_field():
    # Why build_config exists: OmegaConf.to_object raises the dataclass's error as it is, key relative to it.
    with pytest.raises(FieldError) as raised:
        OmegaConf.to_object(composed("base", ["data.decode=x"]))
    assert (raised.value.key, str(raised.value)) == ("decode", "decode: must be auto, stream or memory, got 'x'")


def test_a_dataclass_built_in_python_checks_its_fields_too():
    with pytest.raises(FieldError, match=r"^decode: must be auto, stream or memory, got 'x'$"):
        DataConfig(decode="x")
    with pytest.raises(FieldError, match=r"^set exactly one of epochs and steps"):
        StageConfig(epochs=3)
    with pytest.raises(FieldError, match=r"^data\.frame_size: 36 is not a multiple"):
        ExperimentConfig(data=DataConfig(frame_size=36))
    assert ExperimentConfig(audio_layers="ib3-7-11").audio_layers == "a:3-7-11"  # a preset name, read as its layers


def test_a_sweep_with_an_impossible_override_stops_before_the_job(monkeypatch, capsys):
    from asva import cli, experiment

    monkeypatch.setattr(experiment, "run_job", lambda *args: pytest.fail("the job started"))
    with pytest.raises(SystemExit) as exited:
        cli.run(composed("window_radius", ["train.finetune.batch_size=0"]))
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: train.finetune.batch_size: must be > 0, got 0\n"


def test_an_evaluation_with_an_impossible_override_stops_before_the_evaluation(capsys):
    from asva import cli
    from asva.config.commands import EvaluateConfig

    with pytest.raises(SystemExit) as exited:
        cli.run_command(
            composed("evaluate", ["run_id=abc", "diffusion.cond_drop=1"]),
            EvaluateConfig,
            lambda cfg: pytest.fail("the evaluation started"),
        )
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: diffusion.cond_drop: must be within [0, 1), got 1.0\n"


def test_parameter_counts_and_generation_refuse_an_impossible_override(tmp_path, capsys):
    from asva.generate import generate
    from asva.params import main

    assert main(["model.variant=1024"]) == 2
    assert capsys.readouterr().err == "error: model.variant: must be 256 or 512, got '1024'\n"
    with pytest.raises(ConfigError, match=r"^audio\.encoders\.a\.num_layers: must be > 0, got 0$"):
        generate(["image=x.png", "audio=x.wav", f"out={tmp_path / 'x.mp4'}", "audio.encoders.a.num_layers=0"])


def test_the_tracking_callback_names_the_tracking_key(capsys):
    from asva.tracking.store_callback import use_tracking_config

    with pytest.raises(SystemExit) as exited:
        use_tracking_config(composed("base", ["tracking.uri=http://mlflow:5000"]))
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: tracking.uri: the sqlite backend needs a sqlite:/// URI (or null), got 'http://mlflow:5000'\n"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ExperimentConfig(data=DataConfig(pool_manifest="/no/manifest.csv")), "data.pool_manifest: /no/manifest.csv"),
        (
            ExperimentConfig(curation_filters=CurationConfig(craft_weights="/no/craft.pth")),
            "curation_filters.craft_weights: /no/craft.pth",
        ),
        (CurateConfig(filters=CurationConfig(craft_weights="/no/craft.pth")), "filters.craft_weights: /no/craft.pth"),
        (CurateConfig(filters=CurationConfig(raft_weights="/no/raft.pth")), "filters.raft_weights: /no/raft.pth"),
        (
            ExperimentConfig(eval=EvalConfig(networks=EvalNetworksConfig(i3d_checkpoint="/no/i3d.pt"))),
            "eval.networks.i3d_checkpoint: /no/i3d.pt",
        ),
    ],
)
def test_a_named_file_that_is_not_here_fails_before_compute(config, message):
    with pytest.raises(ConfigError, match=f"^{message} does not exist$"):
        check_files_and_device(config)


def test_the_papers_classifier_and_cuda_must_be_here(tmp_path, monkeypatch):
    sync = SyncClassifierConfig(kind="avsyncd", checkpoint=str(tmp_path / "absent"))
    cfg = ExperimentConfig()
    cfg.eval.networks.sync_classifier = sync
    with pytest.raises(ConfigError, match=r"^eval\.networks\.sync_classifier\.checkpoint: .*absent does not exist$"):
        check_files_and_device(cfg)
    (tmp_path / "absent").mkdir()  # the release's modules folder
    check_files_and_device(cfg)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    cfg.train.device = "cuda"
    with pytest.raises(ConfigError, match=r"^train\.device: cuda, but torch finds no CUDA device here"):
        check_files_and_device(cfg)
    cfg.train.device = "auto"
    check_files_and_device(cfg)
    cfg.eval.paper_metrics = False  # no network of the papers' metrics is loaded: their files are not needed
    cfg.eval.networks.i3d_checkpoint = str(tmp_path / "i3d_torchscript.pt")
    check_files_and_device(cfg)
