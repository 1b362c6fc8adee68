"""The pruning methods a trial may ask for, and whether one can run on the machine at hand."""
from __future__ import annotations

PRUNING_METHODS: dict[str, str] = {
    "none": "no pruning",
    "unstructured": "global magnitude pruning of Linear weights to zeros (same shapes: "
    "no smaller and no faster on dense kernels)",
    "structured": "attention heads and FFN neurons ranked by importance and physically removed "
    "(smaller weight matrices: smaller on disk and faster on every runtime)",
    "semi_structured_2_4": "2:4 semi-structured sparsity run by sparse tensor cores (CUDA, compute "
    "capability >= 8.0, fp16/bf16); prune_ratio = fraction of Linear weights zeroed, at most 0.5",
}
MAX_PRUNE_RATIO = 0.95
#: tasks whose models structured pruning cuts (BERT-layout encoders, Llama-layout decoders)
STRUCTURED_TASKS = (None, "extractive", "causal")
SEMI_STRUCTURED_MIN_CC = (8, 0)
SEMI_STRUCTURED_PRECISIONS = ("fp16", "bf16")


def pruning_infeasible_reason(method: str, device: str, hardware, *, precision: str | None = None,
                              ratio: float | None = None, runtime: str | None = None,
                              task: str | None = None) -> str | None:
    """None if `method` can run on (`device`, `hardware`), else a reason a person can act on.

    `hardware` is a trials.hardware.Hardware (cuda_available, gpu_compute_capability, gpu_name).
    """
    if method == "structured" and task not in STRUCTURED_TASKS:
        return (f"structured pruning removes heads and FFN neurons of BERT-layout encoders (the "
                f"extractive task) and Llama-layout decoders (the causal task); for the {task} task "
                "use 'unstructured' pruning")
    if method != "semi_structured_2_4":
        return None
    return _semi_structured_infeasible_reason(device, hardware, precision, ratio, runtime)


def _semi_structured_infeasible_reason(device: str, hardware, precision: str | None, ratio: float | None,
                                       runtime: str | None) -> str | None:
    if runtime not in (None, "torch"):
        return (f"2:4 semi-structured sparse kernels run on the 'torch' runtime only; runtime "
                f"{runtime!r} would run the masked weights densely: use runtime 'torch'")
    if device != "cuda" or not getattr(hardware, "cuda_available", False):
        return ("2:4 semi-structured sparsity runs only on the sparse tensor cores of NVIDIA GPUs "
                "(compute capability >= 8.0, e.g. A100/H100/L4); on CPU use 'structured' pruning, "
                "which removes heads and FFN neurons and is faster on dense kernels")
    cc = tuple(getattr(hardware, "gpu_compute_capability", (0, 0)) or (0, 0))
    if cc < SEMI_STRUCTURED_MIN_CC:
        name = getattr(hardware, "gpu_name", "") or "this GPU"
        return (f"2:4 semi-structured sparsity needs compute capability >= 8.0 (Ampere or newer); "
                f"{name} has {cc[0]}.{cc[1]}; use 'structured' pruning instead")
    if precision is not None and precision not in SEMI_STRUCTURED_PRECISIONS:
        return (f"2:4 semi-structured sparse kernels run fp16 or bf16 weights, not {precision}; "
                "set precision to fp16 or bf16")
    if ratio is not None and ratio > 0.5:
        return (f"2:4 semi-structured sparsity zeroes at most half of the weights; prune_ratio "
                f"{ratio:g} > 0.5: use a ratio <= 0.5 or 'unstructured'/'structured' pruning")
    return None
