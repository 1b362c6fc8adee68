"""What machine a trial runs on (feasibility input; provenance in reports and MLflow tags)."""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Hardware:
    cpu_model: str = ""
    cpu_count: int = 1
    cpu_flags: frozenset[str] = frozenset()
    cuda_available: bool = False
    gpu_name: str = ""
    gpu_count: int = 0
    gpu_compute_capability: tuple[int, int] = (0, 0)
    gpu_driver: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def cpu_has_bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16"} & self.cpu_flags)

    @property
    def isa(self) -> str:
        """The CPU's int8 instruction-set profile (`isa_profile`)."""
        return isa_profile(self.cpu_flags)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cpu_flags"] = sorted(f for f in self.cpu_flags if f.startswith(("avx", "amx", "vnni", "asimd")))
        d["isa"] = self.isa
        d["gpu_compute_capability"] = ".".join(map(str, self.gpu_compute_capability))
        return d


#: int8 instruction-set profiles, best first: what decides how int8 weights and activations are stored
#: (trials.runtimes.ort_recipes.ORT_INT8_BY_ISA) -- AMX tiles; AVX512 or AVX (VEX) VNNI, whose
#: VPDPBUSD sums u8 x s8 products straight into int32; AVX512 or AVX2 without VNNI, whose VPMADDUBSW
#: adds pairs of u8 x s8 products in saturating int16; 64-bit ARM (NEON; SDOT/UDOT with `asimddp`).
ISA_PROFILES = ("amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "arm64", "generic")
_ISA_FLAGS = (("amx", {"amx_int8"}), ("avx512_vnni", {"avx512_vnni", "avx512vnni"}), ("avx_vnni", {"avx_vnni"}),
              ("avx512", {"avx512f", "avx512bw"}), ("avx2", {"avx2"}))


def isa_profile(cpu_flags, machine: str = "") -> str:
    """The best int8 profile (one of ISA_PROFILES) that CPU flags (/proc/cpuinfo's) and the machine
    name (platform.machine()) show; 'generic' when none does."""
    flags = {f.lower() for f in cpu_flags}
    for profile, needs in _ISA_FLAGS:
        if flags & needs:
            return profile
    if machine.lower() in ("aarch64", "arm64") or "asimd" in flags:
        return "arm64"
    return "generic"


#: where the CPU's model and flags are read from (Linux)
CPUINFO = "/proc/cpuinfo"


def _cpu_info() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open(CPUINFO) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:  # x86, ARM
                    flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


@lru_cache(maxsize=1)
def detect() -> Hardware:
    cpu_model, flags = _cpu_info()
    hw = dict(cpu_model=cpu_model, cpu_count=os.cpu_count() or 1, cpu_flags=flags)
    try:
        import torch

        if torch.cuda.is_available():
            hw.update(
                cuda_available=True,
                gpu_name=torch.cuda.get_device_name(0),
                gpu_count=torch.cuda.device_count(),
                gpu_compute_capability=torch.cuda.get_device_capability(0),
                gpu_driver=_gpu_driver(),
            )
    except ImportError:
        pass
    return Hardware(**hw)


def _gpu_driver() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        return driver.decode() if isinstance(driver, bytes) else str(driver)
    except Exception:
        return ""


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "transformers", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorrt",
             "bitsandbytes", "rouge-score", "ray", "optuna", "mlflow")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
