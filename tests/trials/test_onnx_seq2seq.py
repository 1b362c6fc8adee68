"""Seq2seq on ONNX Runtime: the three exported graphs and generation driven by Hugging Face's generate.

The bar: on the tiny random T5 and BART fixtures, fp32 ONNX Runtime generates exactly the token ids
the torch runtime generates (greedy and beam search, padded batches). Quantized graphs are held to
what was measured on these fixtures (the decoder logits of a teacher-forced prefix, against fp32):

  int8_dynamic  cosine >= 0.999, argmax agreement >= 0.85  (measured: cosine 0.99997 BART /
                0.99987 T5; argmax 0.98 BART / 0.94 T5)
  int4_weight   cosine >= 0.95                               (measured: 0.996 BART / 0.982 T5)

Random tiny models have near-flat logits, so argmax flips here say little about real models; the
ROUGE effect on real data belongs in bench/, not here.

The conftest fixtures give every document the same tokens (their outputs barely depend on the
input) and never, or immediately, emit EOS. So the exact-match tests also run on "sharp" copies
(same configs, 20x larger initial weights: each row its own tokens) and, with an EOS token that some
rows generate and others do not, on rows that finish early and get padded.
"""
from __future__ import annotations

import pytest

from infersweep.trials import TrialSpec
from infersweep.trials.feasibility import check, precision_reason
from infersweep.trials.hardware import Hardware
from infersweep.trials.runtimes import get_runtime

CPU = Hardware(cpu_model="test cpu", cpu_count=2)
GPU = Hardware(cpu_model="test cpu", cpu_count=2, cuda_available=True, gpu_name="H100", gpu_count=1,
               gpu_compute_capability=(9, 0))
MODELS = ("t5", "bart")
ALL_MODELS = (*MODELS, "t5-sharp", "bart-sharp")
#: (num_beams, length_penalty, no_repeat_ngram_size, min_new_tokens, max_new_tokens)
GREEDY = [(1, 1.0, 0, 0, 24), (1, 1.0, 3, 8, 24)]
BEAM = [(2, 0.8, 3, 0, 24), (3, 1.5, 3, 6, 20), (4, 2.0, 3, 0, 16)]


@pytest.fixture(scope="module")
def model_dirs(tiny_t5_dir, tiny_bart_dir, tmp_path_factory):
    dirs = {"t5": tiny_t5_dir, "bart": tiny_bart_dir}
    for name in MODELS:
        dirs[f"{name}-sharp"] = _sharpened(dirs[name], tmp_path_factory.mktemp(f"{name}-sharp"))
    return dirs


def _sharpened(src, dst):
    """The fixture's config with 20x larger initial weights, saved like the fixture."""
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    config = AutoConfig.from_pretrained(src)
    if config.model_type == "t5":
        config.initializer_factor *= 20
    else:
        config.init_std *= 20
    torch.manual_seed(0)
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def _spec(model_dir, **overrides) -> TrialSpec:
    fields = dict(model=str(model_dir), task="seq2seq", runtime="onnxruntime", cpus=1)
    fields.update(overrides)
    return TrialSpec(**fields)


@pytest.fixture(scope="module")
def adapters(model_dirs):
    from infersweep.trials.models.seq2seq import Seq2SeqSummarizer

    return {name: Seq2SeqSummarizer(_spec(path)) for name, path in model_dirs.items()}


@pytest.fixture(scope="module")
def engines(adapters, model_dirs, cache_dir, tmp_path_factory):
    """(model, precision) -> a prepared OrtSeq2SeqEngine, built once per module."""
    from infersweep.trials.runtimes import get_runtime

    built = {}

    def get(name: str, precision: str = "fp32"):
        if (name, precision) not in built:
            spec = _spec(model_dirs[name], precision=precision)
            built[name, precision] = get_runtime("onnxruntime").prepare(
                adapters[name].prepared_model(), spec, tmp_path_factory.mktemp("work"))
        return built[name, precision]

    yield get
    for engine in built.values():
        engine.close()


@pytest.fixture(scope="module")
def documents():
    """Four bundled documents cut to different lengths: the batch is padded."""
    from infersweep.trials.data import load_examples
    from infersweep.trials.spec import DEFAULT_DATASET

    docs = [e.document for e in load_examples(DEFAULT_DATASET, "document", "summary")[:4]]
    return [docs[0], docs[1][:150], docs[2][:400], docs[3][:60]]


def _generate_both(adapter, engine, documents, settings, **extra):
    import torch

    beams, penalty, ngram, min_new, max_new = settings
    batch = adapter._tokenize(documents)
    assert (batch["attention_mask"] == 0).any(), "the batch must be padded"
    kwargs = dict(num_beams=beams, length_penalty=penalty, no_repeat_ngram_size=ngram,
                  min_new_tokens=min_new, max_new_tokens=max_new, do_sample=False, **extra)
    with torch.inference_mode():
        expected = adapter.module.generate(**batch, **kwargs)
    return expected, engine.generate(**batch, **kwargs)


# --- fp32: exactly torch's tokens ------------------------------------------------------------


@pytest.mark.parametrize("settings", GREEDY, ids=["plain", "ngram3-min8"])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_greedy_generate_gives_torchs_token_ids(name, settings, adapters, engines, documents):
    expected, got = _generate_both(adapters[name], engines(name), documents, settings)
    assert got.shape == expected.shape and got.tolist() == expected.tolist()


@pytest.mark.parametrize("settings", BEAM, ids=["beams2-lp0.8", "beams3-lp1.5-min6", "beams4-lp2"])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_beam_search_gives_torchs_token_ids(name, settings, adapters, engines, documents):
    expected, got = _generate_both(adapters[name], engines(name), documents, settings)
    assert got.shape == expected.shape and got.tolist() == expected.tolist()


def _eos_some_rows_generate(adapter, documents) -> int:
    """A token that torch's greedy output has in some rows but not in others."""
    import collections

    import torch

    with torch.inference_mode():
        out = adapter.module.generate(**adapter._tokenize(documents), num_beams=1, max_new_tokens=24,
                                      do_sample=False)
    counts = collections.Counter(t for row in out for t in set(row[3:].tolist()))
    return next(t for t, c in counts.most_common() if c < len(documents))


@pytest.mark.parametrize("settings", [*GREEDY, BEAM[0], (4, 0.5, 3, 0, 24)],
                         ids=["greedy", "greedy-ngram3-min8", "beams2-lp0.8", "beams4-lp0.5"])
@pytest.mark.parametrize("name", ["t5-sharp", "bart-sharp"])
def test_rows_that_end_early_are_padded_like_torch(name, settings, adapters, engines, documents):
    eos = _eos_some_rows_generate(adapters[name], documents)
    expected, got = _generate_both(adapters[name], engines(name), documents, settings, eos_token_id=eos)
    assert got.shape == expected.shape and got.tolist() == expected.tolist()
    if settings == GREEDY[0]:  # the case is real: rows of different lengths
        lengths = {(row != adapters[name].config.pad_token_id).sum().item() for row in expected}
        assert len(lengths) > 1


@pytest.mark.parametrize("name", ALL_MODELS)
def test_decoder_with_past_matches_torch_at_every_past_length(name, adapters, engines, documents):
    """Teacher-forced decoding through decoder_init then decoder_past, one token at a time, against
    torch's logits for the whole prefix: past lengths 1..23 (T5's relative position buckets go
    from exact to logarithmic at 16), not just the length the graph was exported with (2)."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    adapter, generator = adapters[name], engines(name).model
    batch = adapter._tokenize(documents)
    start = torch.full((len(documents), 1), adapter.config.decoder_start_token_id)
    prefix = torch.cat([start, batch["input_ids"][:, 1:24]], dim=1)
    with torch.inference_mode():
        expected = adapter.module(**batch, decoder_input_ids=prefix).logits
        encoded = generator.get_encoder()(**batch)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        for step in range(prefix.shape[1]):
            out = generator(decoder_input_ids=prefix[:, :step + 1], encoder_outputs=encoded,
                            attention_mask=batch["attention_mask"], cache=cache)
            assert cache.get_seq_length() == step + 1
            # float32 rounding grows with the logits' scale (max |logit| ~1 on the fixtures, ~10 on
            # sharp BART, ~2000 on sharp T5); measured differences: <= 6e-6 of (1 + scale). Ignoring the
            # padding mask in decoder_past moved them by 30x (fixture BART) to 30000x this tolerance.
            scale = expected[:, step].abs().max().item()
            torch.testing.assert_close(out.logits[:, -1], expected[:, step], rtol=0, atol=2e-5 * (1 + scale))


def test_export_leaves_the_model_in_eval_mode(adapters, engines):
    engines("bart")
    assert not adapters["bart"].module.training  # exporting a fresh wrapper must not switch on dropout


# --- quantized graphs -------------------------------------------------------------------------


def _teacher_forced_logits(adapter, engine, documents):
    import torch

    batch = adapter._tokenize(documents)
    start = torch.full((len(documents), 1), adapter.config.decoder_start_token_id)
    return engine(**batch, decoder_input_ids=torch.cat([start, batch["input_ids"][:, 1:16]], dim=1))


@pytest.mark.parametrize("precision,min_cosine,min_argmax", [("int8_dynamic", 0.999, 0.85),
                                                              ("int4_weight", 0.95, 0.0)])
@pytest.mark.parametrize("name", MODELS)
def test_quantized_graphs_stay_close_to_fp32_and_generate(name, precision, min_cosine, min_argmax,
                                                          adapters, engines, documents):
    import torch

    reference = _teacher_forced_logits(adapters[name], engines(name), documents)
    quantized = engines(name, precision)
    logits = _teacher_forced_logits(adapters[name], quantized, documents)
    cosine = torch.nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0).item()
    agreement = (logits.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert cosine >= min_cosine and agreement >= min_argmax, (cosine, agreement)
    assert quantized.size_mb() < engines(name).size_mb()
    _, generated = _generate_both(adapters[name], quantized, documents, BEAM[0])
    assert generated.shape[0] == len(documents) and generated.shape[1] > 1


def test_int4_graphs_use_matmulnbits(engines):
    import onnx

    folder = engines("bart", "int4_weight").artifact_path
    ops = {n.op_type for n in onnx.load(str(folder / "decoder_past.onnx")).graph.node}
    assert "MatMulNBits" in ops


# --- artifact cache, size, the runtime's contract ---------------------------------------------


def test_engine_reports_its_graphs_and_the_second_prepare_hits_the_cache(adapters, model_dirs, engines,
                                                                          tmp_path):
    from infersweep.trials.runtimes import get_runtime
    from infersweep.trials.runtimes.onnx_seq2seq_export import GRAPHS, graph_sizes_mb

    first = engines("t5", "int8_dynamic")
    assert first.cache_info["cache_steps"].endswith("int8_dynamic:miss")
    again = get_runtime("onnxruntime").prepare(adapters["t5"].prepared_model(),
                                               _spec(model_dirs["t5"], precision="int8_dynamic"), tmp_path)
    assert again.cache_info["cache"] == "hit"
    assert again.cache_info["cache_steps"] == "export:hit,int8_dynamic:hit"
    assert again.artifact_path == first.artifact_path and again.artifact_path.is_dir()
    assert sorted(p.stem for p in again.artifact_path.glob("*.onnx")) == sorted(GRAPHS)
    assert again.size_mb() == pytest.approx(sum(graph_sizes_mb(again.artifact_path).values()))
    again.close()


@pytest.mark.parametrize("name", ["bart", "t5-sharp"])
def test_seq2seq_trial_on_onnxruntime_gives_torchs_summaries_and_rouge(name, model_dirs, cache_dir, tmp_path):
    from infersweep.trials.runner import run_trial

    reports = {}
    for runtime in ("torch", "onnxruntime"):
        spec = _spec(model_dirs[name], runtime=runtime, n=3, warmup=0, repeats=1, batch_size=2)
        reports[runtime] = run_trial(spec, tmp_path / runtime)
        assert reports[runtime].status == "ok", reports[runtime].reason
    ort, torch_ = reports["onnxruntime"], reports["torch"]
    assert ort.sample_summaries == torch_.sample_summaries
    for metric in ("rouge1", "rouge2", "rougeLsum"):
        assert ort.metrics[metric] == torch_.metrics[metric]
    assert ort.artifact["cache"] in ("hit", "miss") and "export" in ort.artifact["cache_steps"]
    from transformers import AutoConfig

    from infersweep.trials.runtimes.onnx_seq2seq import graph_sizes_mb

    graphs = graph_sizes_mb(ort.artifact["path"])  # the size is all three graphs on disk
    assert ort.metrics["model_size_mb"] == pytest.approx(sum(graphs.values()))
    config = AutoConfig.from_pretrained(model_dirs[name])  # each fp32 graph holds the token embedding
    assert min(graphs.values()) > config.vocab_size * config.d_model * 4 / 2**20, graphs


# --- feasibility -----------------------------------------------------------------------------


def test_unsupported_seq2seq_precision_on_onnxruntime_says_what_to_use(tiny_bart_dir):
    reason = check(_spec(tiny_bart_dir, precision="int8_static"), CPU)
    assert reason is not None
    assert "seq2seq" in reason and "int8_dynamic" in reason and "int8_static" in reason
    assert "past key/values" in reason  # why, not just no
    for precision in ("fp32", "int8_dynamic", "int4_weight"):
        assert check(_spec(tiny_bart_dir, precision=precision), CPU) is None
    assert check(TrialSpec(runtime="onnxruntime", precision="int8_static"), CPU) is None  # extractive


def test_seq2seq_on_cuda_offers_fp32_and_fp16_only(tiny_bart_dir):
    from infersweep.trials.runtimes.base import precisions_for

    ort = get_runtime("onnxruntime")
    assert precisions_for(ort, "seq2seq", "cuda") == ("fp32", "fp16")
    reason = precision_reason(ort, _spec(tiny_bart_dir, precision="int4_weight", device="cuda"), GPU)
    assert "seq2seq" in reason and "fp16" in reason and "CPU only" in reason


# --- CUDA (CUDAExecutionProvider, IO binding): needs a GPU and onnxruntime-gpu -----------------


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_generate_against_torch(precision, tiny_bart_dir, cache_dir, tmp_path, documents):
    import torch

    from infersweep.trials.models.seq2seq import Seq2SeqSummarizer
    from infersweep.trials.runtimes import get_runtime
    from infersweep.trials.runtimes.cache import library_versions

    if not library_versions("onnxruntime-gpu"):
        pytest.skip("needs onnxruntime-gpu")
    spec = _spec(tiny_bart_dir, precision=precision, device="cuda")
    adapter = Seq2SeqSummarizer(spec)
    engine = get_runtime("onnxruntime").prepare(adapter.prepared_model(), spec, tmp_path)
    adapter.module.to("cuda")
    batch = {k: v.to("cuda") for k, v in adapter._tokenize(documents).items()}
    kwargs = dict(num_beams=2, length_penalty=0.8, no_repeat_ngram_size=3, max_new_tokens=16, do_sample=False)
    with torch.inference_mode():
        expected = adapter.module.generate(**batch, **kwargs)
    got = engine.generate(**batch, **kwargs)
    assert got.device.type == "cuda" and got.shape[0] == expected.shape[0]
    if precision == "fp32":  # ORT's CUDA EP may use TF32 where torch does not: near, not exact
        assert got.shape == expected.shape and (got == expected).float().mean().item() >= 0.9
    engine.close()
