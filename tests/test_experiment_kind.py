"""Every experiment runs go to carries `mlflow.experimentKind=custom_model_development`.

MLflow 3.17's UI opens an experiment without that tag in its GenAI view (traces), where none of
the project's runs shows. Experiments the project creates get the tag at creation; experiments
created before (or by another program) get it when the project next logs a run into them.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from asva.tracking.runs import RunLogger, experiment_id
from asva.tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ROLE_JOB


@pytest.fixture
def store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ASVA_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    return MlflowClient(tracking_uri=uri)


def kind(client: MlflowClient, name: str) -> str | None:
    return client.get_experiment_by_name(name).tags.get(EXPERIMENT_KIND_TAG)


def test_experiments_are_created_and_retagged_as_model_development(store: MlflowClient) -> None:
    created = experiment_id("window_radius")
    assert kind(store, "window_radius") == EXPERIMENT_KIND
    assert experiment_id("window_radius") == created

    # Created by an older version of the project, or by hand: no kind until a run is logged into it.
    store.create_experiment("kshot")
    assert kind(store, "kshot") is None
    run = RunLogger.create("kshot", ROLE_JOB, "a job")
    run.finish()
    assert kind(store, "kshot") == EXPERIMENT_KIND
    assert store.get_run(run.run_id).info.experiment_id == store.get_experiment_by_name("kshot").experiment_id

    # A kind someone chose (in the UI) is theirs to keep.
    chosen = store.create_experiment("curation", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert experiment_id("curation") == chosen and kind(store, "curation") == "genai_development"
