"""Promote a trial to the MLflow Model Registry as a pyfunc, with alias, metrics and lineage."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infersweep.tracking import store

EXAMPLE = ("The city council approved a new budget on Tuesday. It adds two bus lines. "
           "Officials said the plan starts in May.")
PROMOTIONS_EXPERIMENT = "infersweep/promotions"
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def code_paths() -> list[str]:
    """The code a promoted model runs, copied beside it: the infersweep package and, in a source
    tree, the trials folder beside it (a wheel installs trials inside the package)."""
    import infersweep
    import infersweep.trials

    package = Path(infersweep.__file__).resolve().parent
    trials = Path(infersweep.trials.__file__).resolve().parent
    return [str(package)] + ([] if trials.is_relative_to(package) else [str(trials)])


@dataclass
class Promotion:
    name: str
    version: str
    alias: str
    model_uri: str
    run_id: str


def promote_variant(spec, report, run_id: str | None, uri: str, name: str, alias: str,
                    lineage: dict[str, str]) -> Promotion:
    """Log the variant as a pyfunc model (under the trial's run), register it, set the alias.

    Without a trial run, the model is logged under a new run of the `infersweep/promotions`
    experiment, whose artifacts live next to a local store (never in the working directory)."""
    import mlflow

    from infersweep.tracking import pyfunc
    from infersweep.trials.package import save_variant

    client = store.client(uri)
    with tempfile.TemporaryDirectory(prefix="infersweep-promote-") as tmp, quiet_mlflow():
        variant = save_variant(spec, Path(tmp) / "variant")
        if run_id:
            run = mlflow.start_run(run_id=run_id)
        else:
            experiment_id = store.ensure_experiment(client, PROMOTIONS_EXPERIMENT, uri)
            run = mlflow.start_run(experiment_id=experiment_id, run_name=f"promote-{name}")
        with run:
            # models from code: MLflow stores tracking/pyfunc.py itself and runs it on load (no pickle)
            info = mlflow.pyfunc.log_model(
                name="summarizer", python_model=pyfunc.__file__, artifacts={"variant": str(variant)},
                code_paths=code_paths(), signature=pyfunc.signature(),
                input_example=[EXAMPLE], pip_requirements=_requirements(report.versions))
            active = run.info.run_id
        with contextlib.redirect_stderr(io.StringIO()):  # "Successfully registered ..."; we say it once
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


@contextlib.contextmanager
def quiet_mlflow():
    """No artifact progress bars and no INFO chatter from MLflow on the normal path.

    A user's own MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR setting wins; warnings still show."""
    import logging

    import mlflow  # noqa: F401  (configures its loggers on import; lower them after that)

    logger = logging.getLogger("mlflow")
    level = logger.level
    unset = PROGRESS_BAR_ENV not in os.environ
    if unset:
        os.environ[PROGRESS_BAR_ENV] = "false"
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
        if unset:
            os.environ.pop(PROGRESS_BAR_ENV, None)


def _requirements(versions: dict[str, str]) -> list[str]:
    names = ("torch", "transformers", "onnxruntime", "rouge-score", "numpy", "pandas")
    return [f"{n}=={versions[n]}" if n in versions else n for n in names] + ["safetensors", "pydantic"]


def load_summarizer(model_uri: str, uri: str | None = None):
    import mlflow.pyfunc

    store.client(store.resolve_uri(uri))
    with quiet_mlflow():
        return mlflow.pyfunc.load_model(model_uri)


VARIANT_ARTIFACT = "variant"


def download_variant(model_uri: str, uri: str | None = None, dst: str | Path | None = None) -> Path:
    """The saved variant (trials/package.py) of a logged or registered summarizer, on local disk:
    `models:/NAME@ALIAS`, `models:/NAME/VERSION` or `runs:/RUN_ID/summarizer`. Served without the
    pyfunc wrapper, by the same `Summarizer` the wrapper calls."""
    import mlflow.artifacts

    from infersweep.trials.package import SPEC_FILE

    store.client(store.resolve_uri(uri))
    with quiet_mlflow():
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri,
                                                         dst_path=str(dst) if dst else None))
    variant = local / "artifacts" / VARIANT_ARTIFACT
    if not (variant / SPEC_FILE).is_file():
        raise FileNotFoundError(f"{model_uri} is not an infersweep summarizer (no artifacts/{VARIANT_ARTIFACT}/"
                                f"{SPEC_FILE}); promote one with `infersweep promote`")
    return variant
