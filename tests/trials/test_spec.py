import pytest
from pydantic import ValidationError

from infersweep.trials import TrialReport, TrialSpec


def test_spec_json_round_trip():
    spec = TrialSpec(precision="int8_dynamic", pruning="unstructured", prune_ratio=0.3, batch_size=8)
    again = TrialSpec.from_json(spec.to_json())
    assert again == spec
    assert again.trial_id() == spec.trial_id()


def test_spec_is_frozen():
    with pytest.raises(ValidationError):
        TrialSpec().precision = "bf16"


def test_trial_id_depends_on_every_knob():
    ids = {TrialSpec(batch_size=b).trial_id() for b in (1, 2)} | {TrialSpec(precision="bf16").trial_id()}
    assert len(ids) == 3


@pytest.mark.parametrize("field, value, needle", [
    ("precision", "int3", "valid: fp32"),
    ("runtime", "tvm", "valid: torch"),
    ("pruning", "random", "valid: none"),
    ("batch_size", 0, "greater than or equal to 1"),
    ("prune_ratio", 0.99, "less than or equal to 0.95"),
    ("colour", "red", "Extra inputs are not permitted"),
])
def test_spec_rejects_bad_values_with_the_valid_ones(field, value, needle):
    with pytest.raises(ValidationError) as info:
        TrialSpec(**{field: value})
    assert needle in str(info.value)


def test_ratio_without_method_is_rejected():
    with pytest.raises(ValidationError, match="pruning 'none'"):
        TrialSpec(prune_ratio=0.2)
    with pytest.raises(ValidationError, match="needs prune_ratio"):
        TrialSpec(pruning="unstructured")


def test_report_round_trip_keeps_everything():
    spec = TrialSpec(batch_size=4)
    report = TrialReport(spec=spec, status="ok", metrics={"latency_ms_per_sample": 1.5, "rouge1": 30.0},
                         hardware={"cpu_model": "x"}, versions={"torch": "2"}, phases_s={"load": 0.1},
                         notes=["n"], sample_summaries=["a\nb"])
    again = TrialReport.from_json(report.to_json())
    assert again == report
    assert again.trial_id == spec.trial_id()


def test_a_quality_bound_on_quantization_is_in_the_id_only_when_set():
    plain = TrialSpec(precision="int8_static")
    assert TrialSpec(precision="int8_static", quantization={}).trial_id() == plain.trial_id()
    bounded = TrialSpec(precision="int8_static", quantization={"max_rouge_drop_pct": 1.0})
    assert bounded.trial_id() != plain.trial_id()
    assert TrialSpec.from_json(bounded.to_json()) == bounded
    with pytest.raises(ValidationError, match="greater than 0"):
        TrialSpec(quantization={"max_rouge_drop_pct": 0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        TrialSpec(quantization={"max_drop": 1})
