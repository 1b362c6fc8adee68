"""2:4 semi-structured sparsity: two of every four weights zero.

The layout is one the sparse tensor cores of NVIDIA GPUs with compute capability >= 8.0 run
(``torch.sparse.to_sparse_semi_structured``); elsewhere the masked weights run densely.
"""
from __future__ import annotations

from functools import lru_cache

from infersweep.trials.pruning.catalog import SEMI_STRUCTURED_MIN_CC
from infersweep.trials.pruning.layers import linear_sparsity, prunable_linears


def semi_structured_supported(device=None) -> bool:
    import torch

    if not torch.cuda.is_available():
        return False
    return tuple(torch.cuda.get_device_capability(device)) >= SEMI_STRUCTURED_MIN_CC


def mask_2_4(weight):
    """The 2:4 mask of `weight`: in every group of 4 along the input dim keep the 2 largest |w|."""
    import torch

    rows, cols = weight.shape
    groups = weight.detach().abs().reshape(rows, cols // 4, 4)
    keep = torch.topk(groups, 2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(rows, cols)


def prune_semi_structured(module, ratio: float) -> dict:
    """Apply a 2:4 pattern to the largest Linears until `ratio` of their weights are zero.

    2:4 zeroes exactly half of a layer, so the layers holding 2 * ratio of the prunable weights
    (largest first) are converted; the rest stay dense. The converted layers run the sparse
    kernels on CUDA GPUs with compute capability >= 8.0 in fp16/bf16.
    """
    import torch

    if ratio > 0.5:
        raise ValueError(f"2:4 sparsity zeroes at most half of the weights; prune_ratio {ratio} > 0.5")
    cls = _semi_structured_linear_class()
    named = [(n, lin) for n, lin in prunable_linears(module)
             if lin.in_features % 64 == 0 and lin.out_features % 32 == 0]
    total = sum(lin.weight.numel() for _, lin in prunable_linears(module))
    target = 2 * ratio * total
    converted, done = [], 0
    for name, lin in sorted(named, key=lambda nl: -nl[1].weight.numel()):
        if done >= target - 1e-9:
            break
        with torch.no_grad():
            lin.weight.mul_(mask_2_4(lin.weight).to(lin.weight.dtype))
        lin.__class__ = cls  # same parameters, sparse-kernel forward
        converted.append(name)
        done += lin.weight.numel()
    return {
        "pruning_method": "semi_structured_2_4",
        "sparsity": linear_sparsity(module),
        "layers_2_4": len(converted),
        "note": (f"2:4 semi-structured sparsity in {len(converted)} Linear layers: shapes unchanged "
                 "(the file is as large as before); faster only through sparse tensor-core kernels "
                 "on CUDA GPUs with compute capability >= 8.0 in fp16/bf16, dense elsewhere"),
    }


@lru_cache(maxsize=1)
def _semi_structured_linear_class():
    """Built on first use, so importing the package does not import torch."""
    import torch

    class SemiStructuredLinear(torch.nn.Linear):
        """A Linear whose 2:4-sparse weight runs on sparse tensor cores once on a capable GPU.

        Holds a dense (masked) weight, so saving, .to() and dtype casts work as usual; on the
        first CUDA forward in fp16/bf16 it compresses the weight with
        torch.sparse.to_sparse_semi_structured. Elsewhere it runs the dense masked weight.
        """

        _sparse = None
        _sparse_key = None

        def forward(self, x):
            w = self.weight
            if w.is_cuda and w.dtype in (torch.float16, torch.bfloat16) and semi_structured_supported(w.device):
                key = (w.device, w.dtype, w.data_ptr(), w._version)
                if self._sparse_key != key:
                    from torch.sparse import to_sparse_semi_structured

                    self._sparse = to_sparse_semi_structured(w.detach().contiguous())
                    self._sparse_key = key
                shape = x.shape
                out = torch.nn.functional.linear(x.reshape(-1, shape[-1]).contiguous(), self._sparse, self.bias)
                return out.reshape(*shape[:-1], -1)
            return torch.nn.functional.linear(x, w, self.bias)

    return SemiStructuredLinear
