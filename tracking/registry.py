"""Promote a trial to the MLflow Model Registry as a pyfunc, with alias, metrics and lineage."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tracking import store

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ("The city council approved a new budget on Tuesday. It adds two bus lines. "
           "Officials said the plan starts in May.")


@dataclass
class Promotion:
    name: str
    version: str
    alias: str
    model_uri: str
    run_id: str


def promote_variant(spec, report, run_id: str | None, uri: str, name: str, alias: str,
                    lineage: dict[str, str]) -> Promotion:
    """Log the variant as a pyfunc model (under the trial's run), register it, set the alias."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from tracking.pyfunc import OUTPUT_COLUMN, SummarizerModel
    from trials.package import Summarizer, save_variant

    client = store.client(uri)
    with tempfile.TemporaryDirectory(prefix="infersweep-promote-") as tmp:
        variant = save_variant(spec, Path(tmp) / "variant")
        example = pd.DataFrame({"document": [EXAMPLE]})
        output = pd.DataFrame({OUTPUT_COLUMN: Summarizer(variant).summarize([EXAMPLE])})
        signature = infer_signature(example, output)
        with mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=f"promote-{name}"):
            info = mlflow.pyfunc.log_model(
                name="summarizer", python_model=SummarizerModel(), artifacts={"variant": str(variant)},
                code_paths=[str(PROJECT_ROOT / "trials"), str(PROJECT_ROOT / "tracking")],
                signature=signature, input_example=example,
                pip_requirements=_requirements(report.versions))
            active = mlflow.active_run().info.run_id
        version = mlflow.register_model(info.model_uri, name)
    version_id = str(version.version)
    client.set_registered_model_alias(name, alias, version_id)
    tags = {**{f"metric.{k}": f"{v:.6g}" for k, v in report.metrics.items()},
            **{f"knob.{k}": str(v) for k, v in spec.knobs().items()},
            **{f"hardware.{k}": str(v) for k, v in report.hardware.items() if k in ("cpu_model", "gpu_name", "gpu_driver")},
            **lineage}
    for key, value in tags.items():
        client.set_model_version_tag(name, version_id, key, value)
    return Promotion(name, version_id, alias, f"models:/{name}@{alias}", active)


def _requirements(versions: dict[str, str]) -> list[str]:
    names = ("torch", "transformers", "onnxruntime", "rouge-score", "numpy", "pandas")
    return [f"{n}=={versions[n]}" if n in versions else n for n in names] + ["safetensors", "pydantic"]


def load_summarizer(model_uri: str, uri: str | None = None):
    import mlflow.pyfunc

    store.client(store.resolve_uri(uri))
    return mlflow.pyfunc.load_model(model_uri)
