"""A servable variant: the transformed model on disk plus the settings to rebuild its engine.

`save_variant` writes the pruned model (save_pretrained) + tokenizer + the trial spec;
`Summarizer(directory)` loads it, applies the spec's precision on the spec's runtime, and
summarizes text. Used by promotion (tracking/) and in any fresh process that serves it.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from infersweep.trials.spec import TrialSpec

MODEL_DIR = "model"
SPEC_FILE = "variant.json"


#: pruning that lives in the module's code rather than its weights: re-applied when served
REAPPLIED_PRUNING = ("semi_structured_2_4",)
#: precisions whose engine is built from the calibration slice: the variant keeps those documents,
#: so the served engine is the one the trial measured (and found in the artifact cache)
CALIBRATED_PRECISIONS = ("int8_static",)


def save_variant(spec: TrialSpec, directory: Path) -> Path:
    """Prune the spec's model exactly as its trial did and save it (weights, tokenizer, settings)."""
    from infersweep.trials.runner import (bound_references, calibration_examples, prune_model, pruning_calibrates,
                                          with_summary_length)
    from infersweep.trials.models import get_adapter

    adapter = get_adapter(spec.task)(spec)
    calibrated = pruning_calibrates(spec) or spec.precision in CALIBRATED_PRECISIONS
    examples = calibration_examples(spec) if calibrated else []
    calibration = [e.document for e in examples]
    prune_model(adapter, spec, calibration if pruning_calibrates(spec) else [])
    measured, _ = with_summary_length(spec)  # 'auto' from the trial's data, not the served placeholder
    return write_variant(adapter, measured, directory, source=spec, calibration_documents=calibration,
                         calibration_references=bound_references(spec, examples))


def write_variant(adapter, spec: TrialSpec, directory: Path, source: TrialSpec | None = None,
                  calibration_documents: list[str] = (), calibration_references: list[str] = ()) -> Path:
    """Save an adapter's (pruned) model, its tokenizer and the settings that rebuild its engine.
    `spec` has a concrete summary length; `source` is the spec as the sweep wrote it; the
    calibration documents are kept where the precision is built from them (CALIBRATED_PRECISIONS), and
    their reference summaries where a quality bound steers that build (accuracy control)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pretrained = getattr(adapter.module, "encoder", adapter.module)
    pretrained.save_pretrained(directory / MODEL_DIR)  # structured: the smaller shapes, in its config
    adapter.tokenizer.save_pretrained(directory / MODEL_DIR)
    keep = spec.pruning in REAPPLIED_PRUNING
    served = spec.model_copy(update={"model": MODEL_DIR, "pruning": spec.pruning if keep else "none",
                                     "prune_ratio": spec.prune_ratio if keep else 0.0,
                                     "dataset": "sample", "warmup": 0})
    source = source or spec
    saved = {"spec": json.loads(served.to_json()), "source_spec": json.loads(source.to_json())}
    if spec.precision in CALIBRATED_PRECISIONS:
        saved["calibration_documents"] = list(calibration_documents)
    if calibration_references:
        saved["calibration_references"] = list(calibration_references)
    (directory / SPEC_FILE).write_text(json.dumps(saved, indent=2))
    return directory


def variant_spec(directory: str | Path) -> TrialSpec:
    """The settings a saved variant is served with (its trial's batch size, runtime, device, cpus),
    without loading it."""
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a saved variant (no {SPEC_FILE})")
    return TrialSpec.model_validate(json.loads(path.read_text())["spec"])


class Summarizer:
    """Load a saved variant and summarize documents with it."""

    def __init__(self, directory: str | Path, batch_size: int | None = None, cpus: int | None = None):
        """`cpus`: threads for the engine (default: the trial's), e.g. a serving replica's CPU share."""
        from infersweep.trials.measure import pin_threads
        from infersweep.trials.models import get_adapter
        from infersweep.trials import runtimes

        directory = Path(directory)
        saved = json.loads((directory / SPEC_FILE).read_text())
        spec = TrialSpec.model_validate(saved["spec"])
        self.spec = spec.model_copy(update={"model": str(directory / spec.model), "cpus": cpus or spec.cpus})
        self.batch_size = batch_size or self.spec.batch_size
        pin_threads(self.spec.cpus)
        self.adapter = get_adapter(self.spec.task)(self.spec)
        if self.spec.pruning in REAPPLIED_PRUNING:  # masks are in the weights; the sparse kernels are not
            from infersweep.trials.pruning import apply_pruning

            apply_pruning(self.adapter.module, self.spec.pruning, self.spec.prune_ratio)
        calibration, references = saved.get("calibration_documents", []), saved.get("calibration_references", [])
        # Removed as soon as the engine is built: engines hold what they run in memory (the torch
        # runtimes' model.pt there only sizes a trial), and a server killed without shutting down
        # must not leave a copy of the weights behind in /tmp.
        with tempfile.TemporaryDirectory(prefix="infersweep-serve-") as workdir:
            prepared = self.adapter.prepared_model(calibration, references)
            self.engine = runtimes.prepare(prepared, self.spec, Path(workdir))

    def summarize(self, documents: list[str]) -> list[str]:
        """One summary per document. Anything but a sequence of strings is refused, not str()-ed:
        a stringified list would be summarized as if it were text."""
        if isinstance(documents, (str, bytes)):
            raise TypeError("summarize takes a list of documents, got a single string")
        documents = list(documents)
        for i, document in enumerate(documents):
            if not isinstance(document, str):
                raise TypeError(f"document {i} is {type(document).__name__}, expected str")
        if not documents:
            return []
        summaries: list[str] = []
        for batch in self.adapter.batches(documents, self.batch_size):
            summaries.extend(self.adapter.summarize_batch(batch, self.engine))
        return summaries
