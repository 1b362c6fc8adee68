"""Trials end to end on the bundled model and data, and the seq2seq path on tiny models."""
import json
from functools import cache
from pathlib import Path

import pytest

from infersweep.trials import TrialReport, TrialSpec, run_trial
from infersweep.trials.measure import METRICS

EXPECTED = {"latency_ms_per_sample", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
            "throughput_samples_per_s", "peak_memory_mb", "prepare_peak_memory_mb", "model_size_mb", "rouge1", "rouge2", "rougeLsum"}
MiB = 2**20


@cache
def bundled_counts() -> tuple[int, int]:
    """(parameters, weights of its nn.Linear layers) of the bundled MiniLM encoder."""
    import torch
    from transformers import AutoModel

    from infersweep.trials.models import resolve_model

    model = AutoModel.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return sum(p.numel() for p in model.parameters()), linear


def state_mb(model) -> float:
    """The bytes of a model's state dict, each shared (tied) tensor once: what torch.save writes."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in model.state_dict().values()}
    return sum(storages.values()) / MiB


def _words(text: str) -> str:
    return " ".join(text.split())


def test_extractive_trial_measures_everything(quick_spec, tmp_path):
    report = run_trial(quick_spec(), tmp_path)
    assert report.status == "ok", report.reason
    assert set(report.metrics) == EXPECTED
    assert set(report.metrics) <= set(METRICS)
    m = report.metrics
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p95"] <= m["latency_ms_p99"]
    params, _ = bundled_counts()
    assert m["model_size_mb"] == pytest.approx(params * 4 / MiB, rel=0.01)  # fp32: 4 bytes a parameter
    assert m["model_size_mb"] == Path(report.artifact["path"]).stat().st_size / MiB
    assert 5 < m["rougeLsum"] < 100
    # each summary: summary_length ('auto' -> 3 here) sentences of its own document
    from infersweep.trials.data import eval_slice, load_examples

    documents = [e.document for e in eval_slice(load_examples("sample"), 3, 0)]
    assert report.artifact["summary_length"] == "3" and len(report.sample_summaries) == 3
    for summary, document in zip(report.sample_summaries, documents):
        lines = summary.split("\n")
        assert len(lines) == 3 and all(_words(line) in _words(document) for line in lines), summary
    saved = TrialReport.from_json((tmp_path / "report.json").read_text())
    assert saved == report


def test_int8_trial_is_smaller_than_fp32(quick_spec, tmp_path):
    fp32 = run_trial(quick_spec(), tmp_path / "a")
    int8 = run_trial(quick_spec(precision="int8_dynamic"), tmp_path / "b")
    assert int8.status == "ok", int8.reason
    assert int8.metrics["model_size_mb"] < 0.8 * fp32.metrics["model_size_mb"]
    # dynamic int8 stores the Linear weights in 1 byte instead of 4; embeddings stay fp32
    params, linear = bundled_counts()
    assert int8.metrics["model_size_mb"] == pytest.approx(((params - linear) * 4 + linear) / MiB, rel=0.02)


def test_unstructured_pruning_report_is_honest(quick_spec, tmp_path):
    report = run_trial(quick_spec(pruning="unstructured", prune_ratio=0.3), tmp_path)
    assert report.status == "ok", report.reason
    assert report.artifact["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert any("unchanged" in note for note in report.notes)
    # zeros are stored like any weight: the same parameters, as large on disk as the dense model
    params, _ = bundled_counts()
    assert report.artifact["params_before"] == report.artifact["params_after"] == params
    assert report.metrics["model_size_mb"] == pytest.approx(params * 4 / MiB, rel=0.01)


def test_infeasible_trial_loads_nothing_and_is_recorded(quick_spec, tmp_path):
    report = run_trial(quick_spec(precision="fp16"), tmp_path)
    assert report.status == "infeasible"
    assert "fp16 runs on cuda" in report.reason
    assert report.metrics == {} and "load" not in report.phases_s
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "infeasible"


def test_an_error_becomes_failed_with_its_message(quick_spec, tmp_path):
    report = run_trial(quick_spec(model=str(tmp_path)), tmp_path / "t")  # a dir with no config.json
    assert report.status == "failed"
    assert "config.json" in report.reason


@pytest.mark.parametrize("fixture", ["tiny_t5_dir", "tiny_bart_dir"])
def test_seq2seq_trial_with_tiny_model(request, fixture, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    spec = TrialSpec(model=str(model_dir), task="seq2seq", n=3, batch_size=2, warmup=0, repeats=1, cpus=1,
                     generation={"num_beams": 2, "max_new_tokens": 8, "no_repeat_ngram_size": 2})
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    assert set(report.metrics) == EXPECTED
    assert len(report.sample_summaries) == 3
    from transformers import AutoModelForSeq2SeqLM

    expected_mb = state_mb(AutoModelForSeq2SeqLM.from_pretrained(model_dir))  # fp32, tied weights once
    assert report.metrics["model_size_mb"] == pytest.approx(expected_mb, rel=0.02)


def test_seq2seq_int8_on_tiny_t5(tiny_t5_dir, tmp_path):
    spec = TrialSpec(model=str(tiny_t5_dir), task="seq2seq", n=2, precision="int8_dynamic", warmup=0,
                     repeats=1, cpus=1, generation={"num_beams": 1, "max_new_tokens": 4})
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    assert len(report.sample_summaries) == 2
    # every Linear layer of the model was saved quantized (its packed int8 weight)
    import torch
    from transformers import AutoModelForSeq2SeqLM

    linears = sum(isinstance(m, torch.nn.Linear) for m in AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir).modules())
    saved = torch.load(report.artifact["path"], weights_only=False)
    assert linears == sum(key.endswith("._packed_params._packed_params") for key in saved) == 33


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_n_beyond_the_dataset_is_capped_and_a_shared_calibration_is_said(quick_spec, tmp_path):
    rows = [{"document": f"Story {i} begins here today. The council met on Monday about item {i}. "
                         f"Residents spoke at length about the plan. A vote follows next week.",
             "summary": f"The council discussed item {i}.\nA vote follows."} for i in range(6)]
    dataset = _write_jsonl(tmp_path / "six.jsonl", rows)
    report = run_trial(quick_spec(dataset=dataset, n=10), tmp_path / "auto")
    assert report.status == "ok", report.reason
    assert any("n=10 is more than the dataset's 6 examples" in note for note in report.notes)
    assert any("calibration overlaps evaluation" in note and "summary_length auto" in note
               for note in report.notes)
    # where nothing reads the calibration slice, its overlap does not matter and is not noted
    fixed = run_trial(quick_spec(dataset=dataset, n=10, summary_length="2"), tmp_path / "fixed")
    assert fixed.status == "ok", fixed.reason
    assert not any("calibrat" in note for note in fixed.notes) and any("n=10" in n for n in fixed.notes)


def test_dialogue_trial_keeps_speakers_and_reads_its_length_from_the_references(quick_spec, tmp_path):
    turns = ["Amanda: I baked cookies this morning. Do you want some of them?",
             "Jerry: Sure, I would love some of your chocolate cookies!",
             "Amanda: I will bring you a whole box of them tomorrow at work.",
             "Jerry: Thanks a lot, that is really kind of you, Amanda."]
    rows = [{"document": "\n".join(turns), "summary": f"Amanda will bring Jerry cookies tomorrow ({i})."}
            for i in range(5)]
    dataset = _write_jsonl(tmp_path / "dialogues.jsonl", rows)
    report = run_trial(quick_spec(dataset=dataset, n=2), tmp_path / "t")
    assert report.status == "ok", report.reason
    assert report.artifact["summary_length"] == "1"
    assert any("summary_length auto: 1 sentence (the median of 5 references, 2 of them evaluated" in n
               for n in report.notes)
    assert not any("overlap" in note for note in report.notes)
    for summary in report.sample_summaries:
        (line,) = summary.split("\n")
        assert line in turns
