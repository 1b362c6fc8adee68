"""A saved variant (what promotion registers) serves exactly what its trial measured."""
import tempfile

import pytest

from infersweep.trials import TrialSpec, run_trial
from infersweep.trials.data import eval_slice, load_examples
from infersweep.trials.package import MODEL_DIR, Summarizer, save_variant


@pytest.mark.parametrize("pruning, ratio", [("structured", 0.3), ("unstructured", 0.3)])
def test_saved_variant_summarizes_like_its_trial(pruning, ratio, tmp_path, monkeypatch):
    spec = TrialSpec(n=4, batch_size=2, warmup=0, repeats=1, cpus=1, pruning=pruning, prune_ratio=ratio)
    report = run_trial(spec, tmp_path / "trial")
    assert report.status == "ok", report.reason
    variant = save_variant(spec, tmp_path / "variant")
    documents = [e.document for e in eval_slice(load_examples("sample"), spec.n, spec.seed)]
    scratch = tmp_path / "system-temp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    served = Summarizer(variant).summarize(documents)
    assert served[:len(report.sample_summaries)] == report.sample_summaries
    assert list(scratch.glob("infersweep-*")) == []  # a server's copy of the weights is not left in /tmp
    weights = sum(f.stat().st_size for f in (variant / MODEL_DIR).glob("*.safetensors")) / 2**20
    # the trial's parameters after pruning, fp32: 4 bytes each
    assert weights == pytest.approx(report.artifact["params_after"] * 4 / 2**20, rel=0.01)
    if pruning == "structured":  # the smaller shapes are saved, not zeros
        assert weights < 0.9 * report.artifact["params_before"] * 4 / 2**20
    else:  # zeros in the same shapes
        assert report.artifact["params_after"] == report.artifact["params_before"]
