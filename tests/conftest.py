"""Shared fixtures: tiny seq2seq and causal models built from a config and saved with save_pretrained()."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SHARED_CNN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cnn_dailymail_dev.jsonl"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def _bundled_tokenizer():
    from transformers import AutoTokenizer

    from infersweep.trials.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))


def _save_tiny(model_cls, config, path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    model_cls(config).save_pretrained(path)
    _bundled_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    tok = _bundled_tokenizer()
    config = T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                      num_decoder_layers=2, num_heads=4, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.sep_token_id, decoder_start_token_id=tok.pad_token_id)
    return _save_tiny(T5ForConditionalGeneration, config, tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_bart_dir(tmp_path_factory) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration

    tok = _bundled_tokenizer()
    config = BartConfig(vocab_size=tok.vocab_size, d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                        decoder_start_token_id=tok.sep_token_id, forced_eos_token_id=tok.sep_token_id)
    return _save_tiny(BartForConditionalGeneration, config, tmp_path_factory.mktemp("tiny-bart"))


#: a small chat template (the tiny causal LM's tokenizer has none of its own)
TINY_CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                      "{% if add_generation_prompt %}<assistant> {% endif %}")


#: prompts for the tiny causal LMs: lengths differ, so a batch of them is left-padded
CAUSAL_DOCUMENTS = ["Rain fell on the town for a week.", "The mayor opened the fair on Tuesday, and the crowds "
                    "came early to see the prize cattle and the new bridge over the river.", "Prices rose.",
                    "Schools will close early on Friday because of the storm, officials said."]


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A random Llama-layout causal LM (grouped-query attention: 4 heads, 2 KV heads) with the
    bundled MiniLM tokenizer and a chat template, saved with save_pretrained()."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _bundled_tokenizer()
    tok.chat_template = TINY_CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                         eos_token_id=tok.sep_token_id, tie_word_embeddings=False)
    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def sharp_llama_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny LM with 10x larger initial weights: each row of a batch generates its own tokens."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.initializer_range *= 10
    path = tmp_path_factory.mktemp("tiny-llama-sharp")
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """An artifact cache of the test module's own ($INFERSWEEP_CACHE), shared by its tests."""
    path = tmp_path_factory.mktemp("artifact-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFERSWEEP_CACHE", str(path))
        yield path


@pytest.fixture
def quick_spec():
    """A fast extractive spec on three bundled documents."""
    from infersweep.trials import TrialSpec

    def make(**overrides):
        fields = dict(n=3, warmup=0, repeats=1, batch_size=2, cpus=1, timing={"max_seconds": 3})
        fields.update(overrides)
        return TrialSpec(**fields)

    return make


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(root: Path, port: int | None = None):
    """`mlflow server` on 127.0.0.1 (sqlite store, served artifacts) once /health answers:
    (the process, in its own session; its URL)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = port or _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((root / "server.log").read_text())
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("mlflow server did not start:\n" + (root / "server.log").read_text())


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 with a sqlite store and served artifacts."""
    proc, url = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the in-process sweep tests."""
    from infersweep.cluster.connect import connect

    connect("local", num_cpus=2)
    yield
    import ray

    ray.shutdown()
