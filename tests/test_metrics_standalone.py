"""The classifier's training script and the stand-alone evaluation, end to end on a tiny benchmark."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import TINY_OVERRIDES
from omegaconf import OmegaConf

from asva.config.commands import EvaluateConfig, TrainSyncClassifierConfig
from asva.config.schema import ExperimentConfig


def tiny(schema, workdir: Path, *extra: str):
    config = OmegaConf.merge(
        OmegaConf.structured(schema),
        OmegaConf.from_dotlist(
            [*(o for o in TINY_OVERRIDES if o.split(".")[0] in {f.name for f in fields(schema)}), *extra]
        ),
        OmegaConf.from_dotlist([f"paths.cache_dir={workdir / 'cache'}", f"paths.runs_dir={workdir / 'runs'}"]),
    )
    return OmegaConf.to_object(config)


def test_training_script_saves_a_classifier_and_logs_its_accuracy(session_store, workdir, tmp_path):
    from mlflow.tracking import MlflowClient

    from asva.evaluation.sync_classifier import load_sync_classifier
    from asva.evaluation.sync_training import run_sync_classifier_training

    output = tmp_path / "sync.pt"
    cfg = tiny(
        TrainSyncClassifierConfig,
        workdir,
        "classifier.steps=3",
        f"output={output}",
        "classifier.video_widths=[8]",
        "classifier.audio_widths=[8]",
    )
    metrics = run_sync_classifier_training(cfg)
    assert 0.0 <= metrics["sync_test_accuracy"] <= 1.0 and metrics["sync_chance"] == pytest.approx(0.2)
    _, payload = load_sync_classifier(output)
    assert payload["dataset"] == "synthetic" and len(payload["losses"]) == 3
    runs = MlflowClient(session_store).search_runs(
        [MlflowClient(session_store).get_experiment_by_name("sync_classifier").experiment_id],
        "tags.`asva.role` = 'sync_classifier'",
    )
    assert runs and runs[0].data.metrics["sync_test_accuracy"] == pytest.approx(metrics["sync_test_accuracy"])


@pytest.mark.slow
def test_evaluate_a_job_run_logs_every_metric_and_reuses_generated_clips(session_store, workdir):
    from mlflow.tracking import MlflowClient

    from asva.evaluation.standalone import run_evaluation
    from asva.experiment import run_job

    job = tiny(ExperimentConfig, workdir, "study=evaltest")
    job_metrics = run_job(job)
    assert job_metrics["relsync_embedded_ref_groundtruth"] == pytest.approx(100.0)
    assert "relsync" not in job_metrics and "fvd" not in job_metrics
    client = MlflowClient(session_store)
    run = client.search_runs([client.get_experiment_by_name("evaltest").experiment_id], "tags.`asva.role` = 'job'")[0]

    # The job sampled the same clips (3 per test video) with the same model: they are only scored.
    def generated() -> dict[Path, int]:
        return {path: path.stat().st_mtime_ns for path in (workdir / "cache" / "generated").rglob("batch-*.pt")}

    sampled_by_the_job = generated()
    cfg = tiny(EvaluateConfig, workdir, f"run_id={run.info.run_id}")
    first = run_evaluation(cfg)
    second = run_evaluation(cfg)
    assert generated() == sampled_by_the_job  # not sampled again
    assert first == second
    for name in (
        "fvd_embedded",
        "ia_embedded",
        "it_embedded",
        "relsync_embedded",
        "alignsync_embedded",
        "alignsync_embedded_ref_static",
    ):
        assert name in first
    logged = client.get_run(run.info.run_id).data.metrics
    assert logged["relsync_embedded"] == pytest.approx(first["relsync_embedded"])
    artifact = client.download_artifacts(run.info.run_id, "evaluation_per_class.json")
    rows = json.loads(Path(artifact).read_text())
    assert {row["metric"] for row in rows} >= {"relsync_embedded", "ia_embedded"}

    # The same adapters from their checkpoint file, the job's settings given as overrides: the same
    # model (its key hashes the weights), so the same clips, scored the same, logged to a new evaluate run.
    [checkpoint] = list((workdir / "runs" / "evaltest").glob("*/finetune.pt"))
    from_file = run_evaluation(tiny(EvaluateConfig, workdir, "study=evaltest", f"checkpoint={checkpoint}"))
    assert generated() == sampled_by_the_job
    assert from_file == first
    [evaluate_run] = client.search_runs(
        [client.get_experiment_by_name("evaltest").experiment_id], "tags.`asva.role` = 'evaluate'"
    )
    assert evaluate_run.data.params["checkpoint"] == str(checkpoint)
    assert evaluate_run.data.metrics["relsync_embedded"] == pytest.approx(first["relsync_embedded"], rel=1e-4)


def test_evaluate_names_a_missing_checkpoint_before_any_compute(workdir, tmp_path):
    from asva.errors import DataError
    from asva.evaluation.standalone import run_evaluation

    missing = tmp_path / "nowhere" / "finetune.pt"
    with pytest.raises(DataError, match=f"checkpoint: {missing} does not exist"):
        run_evaluation(tiny(EvaluateConfig, workdir, f"checkpoint={missing}"))


def test_a_run_logged_with_encoder_a_and_encoder_b_is_read_back_into_the_encoders_mapping(session_store):
    from mlflow.tracking import MlflowClient

    from asva.evaluation.standalone import config_of_run

    client = MlflowClient(session_store)
    run = client.create_run(client.create_experiment("schema_before_the_encoders_mapping"))
    client.log_param(run.info.run_id, "cfg.audio.encoder_b.kind", "beats")
    client.log_param(run.info.run_id, "cfg.audio.encoder_b.checkpoint", "/ckpt/BEATs_iter3.pt")
    cfg = config_of_run(run.info.run_id)
    assert (cfg.audio.encoders["b"].kind, cfg.audio.encoders["b"].checkpoint) == ("beats", "/ckpt/BEATs_iter3.pt")
    assert cfg.audio.encoders["a"] == ExperimentConfig().audio.encoders["a"]
