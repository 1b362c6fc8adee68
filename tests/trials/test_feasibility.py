import pytest

from infersweep.trials import TrialSpec
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import Hardware

CPU = Hardware(cpu_model="test cpu", cpu_count=2)
GPU = Hardware(cpu_model="test cpu", cpu_count=2, cuda_available=True, gpu_name="H100", gpu_count=1,
               gpu_compute_capability=(9, 0))


def test_defaults_are_feasible_on_cpu():
    assert check(TrialSpec(), CPU) is None
    assert check(TrialSpec(precision="int8_dynamic"), CPU) is None


def test_fp16_on_cpu_says_what_to_use():
    reason = check(TrialSpec(precision="fp16"), CPU)
    assert reason.startswith("runtime 'torch' has no fp16 kernel on cpu")
    assert "fp16 runs on cuda; on cpu use fp32, bf16, int8_dynamic, int8_static, int4_weight" in reason


def test_cuda_without_gpu():
    assert "no CUDA GPU is visible" in check(TrialSpec(device="cuda"), CPU)


def test_fp16_on_gpu_is_feasible():
    assert check(TrialSpec(device="cuda", precision="fp16"), GPU) is None


def test_precision_without_kernel_names_the_runtime_limit():
    reason = check(TrialSpec(precision="int8_static"), CPU)
    assert "runtime 'torch' has no int8_static kernel on cpu" in reason and "onnxruntime" in reason
    reason = check(TrialSpec(runtime="torch_compile", precision="int8_dynamic"), CPU)
    assert "runtime 'torch_compile' has no int8_dynamic kernel on cpu" in reason


@pytest.mark.parametrize("precision, device", [("int8_dynamic", "cuda"), ("int4_weight", "cuda"),
                                               ("int4_weight", "cpu")])
def test_bitsandbytes_precisions_need_the_package(precision, device, monkeypatch):
    import importlib.util

    hardware = GPU if device == "cuda" else CPU
    spec = TrialSpec(precision=precision, device=device)
    if importlib.util.find_spec("bitsandbytes") is not None:
        assert check(spec, hardware) is None
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    reason = check(spec, hardware)
    assert "bitsandbytes" in reason and "infersweep[gpu]" in reason
    assert check(TrialSpec(precision="int8_dynamic"), CPU) is None  # torch's own int8 kernels on CPU


def test_check_is_pure():
    spec = TrialSpec(precision="fp16", device="cuda")
    assert check(spec, CPU) == check(spec, CPU) != None
    assert check(spec, GPU) is None


def test_pruning_methods_are_checked_before_anything_loads():
    semi = dict(pruning="semi_structured_2_4", prune_ratio=0.5)
    assert "sparse tensor cores" in check(TrialSpec(**semi), CPU)
    assert check(TrialSpec(**semi, device="cuda", precision="fp16"), GPU) is None
    assert "fp16 or bf16" in check(TrialSpec(**semi, device="cuda"), GPU)
    on_ort = check(TrialSpec(**semi, device="cuda", precision="fp16", runtime="onnxruntime"), GPU)
    assert on_ort and "runtime 'torch'" in on_ort
    seq2seq = check(TrialSpec(task="seq2seq", pruning="structured", prune_ratio=0.3), CPU)
    assert "BERT-layout" in seq2seq and "unstructured" in seq2seq
    assert check(TrialSpec(pruning="structured", prune_ratio=0.3), CPU) is None


def test_precision_hint_names_only_runtimes_that_run_it_for_the_task():
    reason = check(TrialSpec(task="seq2seq", precision="int8_static", runtime="torch"), CPU)
    assert "no installed runtime does" in reason  # onnxruntime's int8_static is extractive-only
    reason = check(TrialSpec(precision="int8_static", runtime="torch"), CPU)
    assert "runtimes that do: onnxruntime" in reason
