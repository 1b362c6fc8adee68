"""apply_pruning: the one entry point a trial calls with the method and ratio its spec names."""
from __future__ import annotations

from typing import Iterable, Mapping

from infersweep.trials.pruning.catalog import PRUNING_METHODS
from infersweep.trials.pruning.semi_structured import prune_semi_structured
from infersweep.trials.pruning.structured import prune_structured
from infersweep.trials.pruning.unstructured import prune_unstructured


def apply_pruning(module, method: str, ratio: float, *, calibration: Iterable[Mapping] | None = None,
                  importance: str | None = None, head_ratio: float | None = None,
                  ffn_ratio: float | None = None, scope: str | None = None) -> dict:
    """Prune `module` in place; return facts about what changed (for the report).

    For ``structured``: `ratio` is the fraction of attention heads *and* of FFN neurons removed;
    `head_ratio` / `ffn_ratio` override it per kind. `importance` is ``weight`` (default without
    calibration inputs) or ``activation`` (default when `calibration` — a list of tokenizer
    outputs, e.g. ``PreparedModel.calibration_inputs`` — is given). `scope` ``global`` ranks
    units across layers (scores normalized per layer), so sensitive layers keep more; ``layer``
    removes the same share in every layer. Default (None): heads per layer, FFN neurons global —
    every layer keeps the same head count, which ONNX Runtime's Attention fusion needs (it takes
    one num_heads per graph), and FFN neurons go where they matter least.
    """
    if method == "none" or ratio <= 0:
        return {"pruning_method": "none"}
    if method == "unstructured":
        return prune_unstructured(module, ratio)
    if method == "structured":
        return prune_structured(module, ratio if head_ratio is None else head_ratio,
                                ratio if ffn_ratio is None else ffn_ratio,
                                importance=importance, calibration=calibration, scope=scope)
    if method == "semi_structured_2_4":
        return prune_semi_structured(module, ratio)
    raise ValueError(f"unknown pruning method {method!r}; valid: {sorted(PRUNING_METHODS)}")
