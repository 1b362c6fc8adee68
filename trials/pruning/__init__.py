"""Pruning knob: the valid methods and their implementations.

- ``unstructured``: global magnitude pruning to zeros. Shapes stay the same, so dense kernels
  run exactly as fast and the file is exactly as large; the report says so.
- ``structured``: attention heads and FFN intermediate neurons ranked by importance and
  *physically removed* (smaller weight matrices). Smaller on disk and faster on every runtime.
  The per-layer shapes are recorded in the config (``structured_pruning``) so the model saves
  with ``save_pretrained`` and reloads with :func:`load_encoder`.
- ``semi_structured_2_4``: two of every four weights zero in a layout the sparse tensor cores
  of NVIDIA GPUs with compute capability >= 8.0 run (``torch.sparse.to_sparse_semi_structured``).

Modules, one concern each:

- ``catalog``: the method table, MAX_PRUNE_RATIO and pruning_infeasible_reason (no torch import)
- ``apply``: apply_pruning, the entry point that runs the method a spec names
- ``layers``: the prunable Linears, BERT-layout and Llama-layout layers, and cutting heads (key/value
  groups under grouped-query attention) and neurons out of one
- ``unstructured``, ``structured`` (with importance scores), ``semi_structured`` (2:4): the methods
- ``checkpoint``: the shapes recorded in the config; saving and reloading a pruned model

Importers use this package (``from trials.pruning import X``); the names below are its public API.
"""
from infersweep.trials.pruning.apply import apply_pruning
from infersweep.trials.pruning.catalog import (MAX_PRUNE_RATIO, PRUNING_METHODS, SEMI_STRUCTURED_MIN_CC,
                                    SEMI_STRUCTURED_PRECISIONS, pruning_infeasible_reason)
from infersweep.trials.pruning.checkpoint import (CONFIG_KEY, attention_shape, load_causal_lm, load_encoder,
                                                  pruned_layout,
                                       reshape_to_layout, save_pruned)
from infersweep.trials.pruning.layers import (Block, blocks, count_parameters, find_encoder, linear_sparsity,
                                   prunable_linears, prune_block)
from infersweep.trials.pruning.semi_structured import mask_2_4, prune_semi_structured, semi_structured_supported
from infersweep.trials.pruning.structured import (DEFAULT_FFN_SCOPE, DEFAULT_HEAD_SCOPE, IMPORTANCE, activation_importance,
                                       importance_scores, prune_structured, weight_importance)
from infersweep.trials.pruning.unstructured import prune_unstructured

__all__ = [
    # catalog and feasibility
    "PRUNING_METHODS", "MAX_PRUNE_RATIO", "SEMI_STRUCTURED_MIN_CC", "SEMI_STRUCTURED_PRECISIONS",
    "pruning_infeasible_reason",
    # running a method
    "apply_pruning", "prune_unstructured", "prune_structured", "prune_semi_structured",
    # model anatomy
    "prunable_linears", "linear_sparsity", "count_parameters", "Block", "blocks", "find_encoder", "prune_block",
    # structured: importance
    "IMPORTANCE", "DEFAULT_HEAD_SCOPE", "DEFAULT_FFN_SCOPE", "importance_scores", "weight_importance",
    "activation_importance",
    # checkpoint layout
    "CONFIG_KEY", "pruned_layout", "attention_shape", "reshape_to_layout", "save_pruned", "load_encoder",
    "load_causal_lm",
    # 2:4 semi-structured
    "mask_2_4", "semi_structured_supported",
]
