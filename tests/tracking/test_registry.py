"""Promotion of a logged trial (tracking/registry.py) into the Model Registry of a real sqlite
store: the model version belongs to the trial's own run, the alias points at it, and the
version carries the trial's metrics, knobs and lineage. (That the registered model loads and
summarizes is in test_pyfunc.py.)
"""
from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from infersweep.tracking.registry import promote_variant
from infersweep.tracking.sweep_runs import TAG_KIND, SweepRuns
from infersweep.trials import TrialSpec
from infersweep.trials.spec import TrialReport

pytestmark = pytest.mark.slow  # saves and logs the bundled model (~90 MB): about 10 s

MODEL = "infersweep-test-summarizer"


def test_a_promoted_trial_is_a_version_of_its_own_run_with_alias_metrics_and_lineage(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = SweepRuns("promote", uri)
    parent = runs.parent_run_id()
    spec = TrialSpec(n=3, warmup=0, repeats=1, batch_size=2, cpus=1, precision="int8_dynamic")
    report = TrialReport(spec=spec, status="ok", metrics={"latency_ms_per_sample": 3.25, "rougeLsum": 35.125},
                         hardware={"cpu_model": "test cpu", "cpu_count": 2})
    run_id = runs.trial_finished(report, {"speedup": 1.5})
    logged = MlflowClient(tracking_uri=uri).get_run(run_id)

    done = promote_variant(spec, report, run_id, uri, MODEL, "champion",
                           {"sweep": "promote", "trial_id": report.trial_id})
    reader = MlflowClient(tracking_uri=uri)
    version = reader.get_model_version_by_alias(MODEL, "champion")
    assert (done.name, done.version, done.alias, done.run_id) == (MODEL, "1", "champion", run_id)
    assert done.model_uri == f"models:/{MODEL}@champion"
    assert str(version.version) == "1" and version.run_id == run_id  # (an int from MLflow 3.17's store)
    assert version.tags == {"metric.latency_ms_per_sample": "3.25", "metric.rougeLsum": "35.125",
                            "knob.precision": "int8_dynamic", "knob.pruning": "none", "knob.prune_ratio": "0.0",
                            "knob.runtime": "torch", "knob.batch_size": "2", "knob.device": "cpu",
                            "hardware.cpu_model": "test cpu", "sweep": "promote", "trial_id": report.trial_id}
    # the model went under the trial's run: no other run was made, the trial's values are as logged
    assert sorted(r.info.run_id for r in reader.search_runs([runs.experiment_id])) == sorted([parent, run_id])
    assert reader.search_experiments(filter_string="name = 'infersweep/promotions'") == []
    run = reader.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[TAG_KIND] == "trial"
    assert run.data.metrics == logged.data.metrics and run.data.params == logged.data.params
