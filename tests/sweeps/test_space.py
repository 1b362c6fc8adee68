"""The feasible space: only combinations that can run on the trials' device are ever sampled."""
import dataclasses

import pytest
from typer.testing import CliRunner

from infersweep.cli import SPECS_DIR, app
from infersweep.sweeps.space import feasible_space
from infersweep.sweeps.spec import SweepSpecError, load_sweep_spec
from infersweep.trials.feasibility import check
from infersweep.trials.hardware import detect

CPU_ONLY = dataclasses.replace(detect(), cuda_available=False, gpu_count=0, gpu_name="")
A_GPU = dataclasses.replace(detect(), cuda_available=True, gpu_count=1, gpu_name="NVIDIA H100",
                            gpu_compute_capability=(9, 0))


def write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_a_cpu_sweep_rules_out_what_cannot_run_there_with_its_reason():
    sweep = load_sweep_spec(SPECS_DIR / "quickstart.yaml")
    space = feasible_space(sweep, CPU_ONLY)
    runnable = {tuple(v.split("/")) for v in space.variants}
    ruled = {(r.runtime, r.precision, r.pruning): r.reason for r in space.ruled_out}
    # fp16 has no CPU kernel anywhere; onnxruntime has no bf16 graph: both ruled out with the table's words
    assert ("torch", "fp16", "none") in ruled and "fp16 runs on cuda" in ruled[("torch", "fp16", "none")]
    assert ("onnxruntime", "bf16", "none") in ruled
    assert ("torch", "fp32", "none") in runnable and ("onnxruntime", "int8_dynamic", "structured:0.2") in runnable
    assert len(runnable) + len(ruled) == 3 * 4 * 3  # every combination is one or the other
    for point in space.grid():  # every point the sampler can be given runs
        assert check(sweep.trial_spec(point), CPU_ONLY) is None, point
    assert len(space.grid()) == len(runnable) * 2
    lines = space.describe()
    assert f"{len(runnable)} of 36 combinations" in lines[0]
    torch_fp16 = [line for line in lines if "torch/fp16" in line]
    # one line per reason; a (runtime, precision) out with every pruning choice is shown once
    assert len(torch_fp16) == 1 and "ruled out torch/fp16/*: runtime 'torch' has no fp16" in torch_fp16[0]


def test_the_quickstart_offers_openvino_where_it_is_installed():
    """The vendor runtimes compete in the quickstart: openvino points where its extra is installed
    (here: `make install` installs it), ruled out with the install command where it is not."""
    from infersweep.trials.runtimes import get_runtime
    from infersweep.trials.runtimes.base import missing_requirement

    sweep = load_sweep_spec(SPECS_DIR / "quickstart.yaml")
    assert "openvino" in sweep.space.runtime
    space = feasible_space(sweep, detect())
    openvino = [v for v in space.variants if v.startswith("openvino/")]
    if missing_requirement(get_runtime("openvino")) is None:
        assert {"openvino/fp32/none", "openvino/fp32/structured:0.2"} <= set(openvino)
        assert any(point.get("runtime", point.get("variant", "")).startswith("openvino") for point in space.grid())
    else:
        assert not openvino
        reasons = [r.reason for r in space.ruled_out if r.runtime == "openvino" and r.precision == "fp32"]
        assert reasons and "pip install" in reasons[0]
    assert sweep.search.num_trials == 12  # more runtimes, not more trials


def test_a_gpu_sweep_uses_the_gpu_tables_and_leaves_package_checks_to_the_workers(tmp_path):
    sweep = load_sweep_spec(write(tmp_path, "name: g\ntrial: {device: cuda}\nresources: {gpu: 1}\n"
                                            "space: {precision: [fp32, fp16, int8_static], runtime: [torch, tensorrt]}\n"))
    space = feasible_space(sweep, A_GPU)
    assert "torch/fp16/none" in space.variants and "tensorrt/fp16/none" in space.variants
    # tensorrt may be missing on a laptop driver; its workers are checked when they run
    ruled = {(r.runtime, r.precision): r.reason for r in space.ruled_out}
    assert ("torch", "int8_static") in ruled and "int8_static" in ruled[("torch", "int8_static")]
    assert all("pip install" not in reason for reason in ruled.values())


def test_a_rectangular_space_keeps_one_parameter_per_knob(tmp_path):
    """fp16 is out on every runtime: what remains is a product, so the sampler sees the knobs
    themselves; onnxruntime/bf16 alone out makes it a joint `variant` parameter instead."""
    whole = load_sweep_spec(write(tmp_path, "name: r\nspace: {precision: [fp32, int8_dynamic, fp16], "
                                            "runtime: [torch, onnxruntime], batch_size: [1, 4]}\n"))
    space = feasible_space(whole, CPU_ONLY)
    assert space.encoding == "axes"
    assert space.axes() == {"runtime": ["torch", "onnxruntime"], "precision": ["fp32", "int8_dynamic"],
                            "pruning": ["none"], "batch_size": [1, 4]}
    assert len(space.grid()) == 8 and all(check(whole.trial_spec(p), CPU_ONLY) is None for p in space.grid())
    holed = load_sweep_spec(write(tmp_path, "name: h\nspace: {precision: [fp32, bf16], "
                                            "runtime: [torch, onnxruntime]}\n"))
    space = feasible_space(holed, CPU_ONLY)
    assert space.encoding == "variant" and sorted(space.axes()["variant"]) == [
        "onnxruntime/fp32/none", "torch/bf16/none", "torch/fp32/none"]


def test_nothing_runnable_is_one_clear_error_before_anything_starts(tmp_path):
    path = write(tmp_path, f"name: e\nspace: {{precision: [fp16], runtime: [onnxruntime, torch]}}\n"
                           f"storage: {{path: {tmp_path / 'sweeps'}}}\n")
    sweep = load_sweep_spec(path)
    with pytest.raises(SweepSpecError) as info:
        feasible_space(sweep, CPU_ONLY)
    message = str(info.value)
    assert message.startswith("space: no combination") and "fp16 runs on cuda" in message
    assert "onnxruntime/fp16/none" in message and "torch/fp16/none" in message
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "space: no combination" in result.output
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("algorithm", ["gp", "tpe", "random", "nsga2", "grid"])
def test_every_sampler_proposes_only_runnable_points(tmp_path, algorithm):
    import optuna

    from infersweep.sweeps.search import optuna_space, sampler

    sweep = load_sweep_spec(write(tmp_path, f"name: s\nsearch: {{algorithm: {algorithm}, num_trials: 12}}\n"
                                            "space: {precision: [fp32, bf16, fp16, int8_dynamic, int8_static], "
                                            "runtime: [torch, onnxruntime], batch_size: [1, 4]}\n"))
    space = feasible_space(sweep)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler(sweep))
    seen = set()
    for i in range(min(10, len(space.grid()) - 1)):  # the grid sampler stops the study after its last point
        trial = study.ask(optuna_space(sweep))
        spec = sweep.trial_spec(trial.params)
        assert check(spec, detect()) is None, trial.params
        seen.add(spec.trial_id())
        study.tell(trial, [float(i), float(-i)])
    assert len(seen) > 4


def test_a_sweep_pinned_to_an_accelerator_type_uses_that_generation(tmp_path):
    """TensorRT needs compute capability 7.5: ruled out for a V100 pool, runnable on a T4 pool,
    judged from the sweep file alone on a CPU-only driver."""
    from infersweep.sweeps.checks import declared_hardware

    def space_on(accelerator):
        sweep = load_sweep_spec(write(tmp_path, f"name: g\ntrial: {{device: cuda}}\nresources: {{gpu: 1, "
                                                f"accelerator_type: {accelerator}}}\n"
                                                "space: {precision: [fp16], runtime: [torch, tensorrt]}\n"))
        hardware = declared_hardware(sweep)
        return feasible_space(sweep, hardware if not detect().cuda_available else A_GPU)

    if detect().cuda_available:
        pytest.skip("the driver has a GPU: the declared one is not used")
    v100 = space_on("V100")
    assert "torch/fp16/none" in v100.variants and "tensorrt/fp16/none" not in v100.variants
    assert "7.5" in v100.by_reason().popitem()[0]
    assert "tensorrt/fp16/none" in space_on("T4").variants
