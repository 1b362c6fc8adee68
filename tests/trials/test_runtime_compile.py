"""torch.compile on a tiny random encoder (a MiniLM compile takes minutes on 2 cores)."""
from __future__ import annotations

import pytest
import torch

from infersweep.trials import TrialSpec
from infersweep.trials.runtimes import get_runtime
from infersweep.trials.runtimes.base import PreparedModel

pytestmark = pytest.mark.slow


def _tiny_model() -> PreparedModel:
    from transformers import BertConfig, BertModel

    from infersweep.trials.models.extractive import _embedding_head_class

    torch.manual_seed(0)
    config = BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    head = _embedding_head_class()(BertModel(config).eval()).eval()
    ids = torch.randint(5, 500, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "embeddings": {0: "batch"}}
    return PreparedModel(head, {"input_ids": ids, "attention_mask": mask}, ("input_ids", "attention_mask"),
                         ("embeddings",), axes, [], "bert", 2, 32)


def test_torch_compile_matches_eager_and_compiles_only_in_prepare(tmp_path, monkeypatch):
    from torch._dynamo.utils import counters

    monkeypatch.setenv("INFERSWEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "unused"))  # restored afterwards
    model = _tiny_model()
    engine = get_runtime("torch_compile").prepare(model, TrialSpec(runtime="torch_compile"), tmp_path / "w")
    assert engine.cache_info["cache"] == "miss" and engine.cache_info["compile_s"] > 0
    assert engine.cache_info["cache_dir"] == str((tmp_path / "cache" / "inductor").resolve())
    frames = counters["stats"]["unique_graphs"]
    for batch, length in [(5, 20), (1, 7), (9, 3), (2, 30), (1, 12)]:  # shapes the timed passes see
        ids = torch.randint(5, 500, (batch, length))
        mask = torch.ones_like(ids)
        mask[0, length // 2:] = 0
        with torch.inference_mode():
            expected = model.module(input_ids=ids, attention_mask=mask)
        torch.testing.assert_close(engine(input_ids=ids, attention_mask=mask), expected, atol=1e-5, rtol=1e-4)
    assert counters["stats"]["unique_graphs"] == frames, "a shape recompiled after prepare"
    # the artifact is the model's fp32 state dict: its weights, 4 bytes each (+ torch.save's zip
    # records, ~5% of so tiny a model)
    saved = torch.load(engine.artifact_path, weights_only=True)
    assert saved.keys() == model.module.state_dict().keys()
    weights_mb = sum(p.numel() for p in model.module.parameters()) * 4 / 2**20
    assert weights_mb < engine.size_mb() == pytest.approx(weights_mb, rel=0.1)
    engine.close()
