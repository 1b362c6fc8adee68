"""Serving memory: what a server holding one variant needs, measured in a fresh process.

The trial writes its (pruned) model as a servable variant (trials.package.write_variant) and starts
`python -m trials.serving VARIANT_DIR`: that process imports the libraries, returns freed heap to
the OS and reads its memory (the floor), builds the engine through the same path `promote` and
`summarize` use (trials.package.Summarizer), drops the source torch weights, then summarizes the
evaluation documents at the trial's batch size while memory is sampled. Serving memory is the
peak over the floor: the engine's weights, its runtime's buffers and the activations, and nothing
the trial's own preparation (export, quantization, calibration) left behind in the trial process.

CPU: resident set size. CUDA: this process's memory per NVML (ORT and TensorRT allocations count,
not only the torch allocator), or the torch allocator's peak where NVML is not readable.
"""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["DOCUMENTS_FILE", "serving_memory", "main"]

DOCUMENTS_FILE = "documents.json"
TIMEOUT_S = 600


def serving_memory(variant_dir: Path, documents: list[str], batch_size: int) -> dict:
    """Run the serving process on `variant_dir` and return what it measured:
    {"serving_peak_mb", "floor_mb", "loaded_mb", "load_s", "serve_s"}. Raises RuntimeError with the
    child's last words when it fails."""
    variant_dir = Path(variant_dir)
    (variant_dir / DOCUMENTS_FILE).write_text(json.dumps({"documents": documents, "batch_size": batch_size}))
    done = subprocess.run([sys.executable, "-m", "infersweep.trials.serving", str(variant_dir)], capture_output=True,
                          text=True, timeout=TIMEOUT_S, cwd=Path.cwd())
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])[-400:]
        raise RuntimeError(f"the serving-memory process failed (exit {done.returncode}): {tail}")
    return json.loads(lines[-1])


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise), so resident
    memory shows what is live."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure may include freed heap
        pass


def _import_runtime_libraries(variant_dir: Path, device: str, runtime: str = "") -> None:
    """Import what the engine will use, and touch torch's kernels once, before the floor is read:
    library code (a model family's modeling module alone is ~130 MiB) is the same for every variant
    of a model. OpenVINO loads its CPU plugin (~100 MiB of code) on first use: loaded here for its
    variants only."""
    import importlib

    import torch
    from transformers import AutoConfig

    from infersweep.trials.package import MODEL_DIR

    for optional in ("onnxruntime", "infersweep.trials.models.extractive", "infersweep.trials.models.seq2seq",
                     "infersweep.trials.models.causal"):
        try:
            importlib.import_module(optional)
        except ImportError:
            pass
    config = AutoConfig.from_pretrained(variant_dir / MODEL_DIR)
    family = config.model_type.replace("-", "_")
    try:
        importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    except ImportError:  # a custom (remote-code) model: its module loads with the model
        pass
    x = torch.ones(64, 64, device=device)
    (x @ x).sum().item()
    if runtime == "openvino":
        import openvino

        openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _measure(variant_dir: Path) -> dict:
    from infersweep.trials.measure import MemoryTracker, rss_mb
    from infersweep.trials.package import SPEC_FILE, Summarizer

    job = json.loads((variant_dir / DOCUMENTS_FILE).read_text())
    saved = json.loads((variant_dir / SPEC_FILE).read_text())["spec"]
    device = saved.get("device", "cpu")
    _import_runtime_libraries(variant_dir, device, saved.get("runtime", ""))
    release_freed_memory()
    floor = rss_mb()
    start = time.perf_counter()
    summarizer = Summarizer(variant_dir, batch_size=job["batch_size"])
    summarizer.adapter.module = None  # served from the engine alone, as in a trial
    release_freed_memory()
    loaded, load_s = rss_mb(), time.perf_counter() - start
    start = time.perf_counter()
    with MemoryTracker(device, start_mb=floor) as memory:
        summarizer.summarize(job["documents"])
    return {"serving_peak_mb": round(memory.peak_growth_mb(), 2), "floor_mb": round(floor, 2),
            "loaded_mb": round(loaded - floor, 2), "load_s": round(load_s, 3),
            "serve_s": round(time.perf_counter() - start, 3)}


def main(argv: list[str] | None = None) -> int:
    import logging
    import warnings

    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    print(json.dumps(_measure(Path(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
