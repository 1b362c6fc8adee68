"""CPU instruction-set detection (trials.hardware) and what ONNX Runtime's int8 recipe makes of it,
with faked /proc/cpuinfo contents."""
from __future__ import annotations

import pytest

from infersweep.trials import hardware
from infersweep.trials.hardware import ISA_PROFILES, isa_profile

X86 = "fpu sse sse2 ssse3 sse4_1 sse4_2 fma avx"
#: (flags line, profile) for each profile; the CPUs are examples of each
CPUS = [
    (f"{X86} avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8", "amx"),  # Sapphire Rapids
    (f"{X86} avx2 avx512f avx512bw avx512_vnni avx512_bf16", "avx512_vnni"),  # Zen 4, Cascade Lake
    (f"{X86} avx2 avx_vnni", "avx_vnni"),  # Alder Lake
    (f"{X86} avx2 avx512f avx512bw", "avx512"),  # Skylake-SP
    (f"{X86} avx2", "avx2"),  # Zen 2/3, Haswell
    (X86, "generic"),
]
ARM = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


@pytest.fixture
def fake_cpuinfo(monkeypatch, tmp_path):
    """Write a /proc/cpuinfo with the given flags (x86 `flags` or ARM `Features`) and read it fresh."""
    def write(flags: str, key: str = "flags"):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\n{key}\t\t: {flags}\n\n"
                        f"processor\t: 1\n{key}\t\t: {flags}\n")
        monkeypatch.setattr(hardware, "CPUINFO", str(path))
        hardware.detect.cache_clear()
        return hardware.detect()

    yield write
    hardware.detect.cache_clear()


@pytest.mark.parametrize(("flags", "profile"), CPUS, ids=[p for _, p in CPUS])
def test_isa_profile_from_cpuinfo_flags(fake_cpuinfo, flags, profile):
    hw = fake_cpuinfo(flags)
    assert hw.isa == profile
    assert hw.as_dict()["isa"] == profile


def test_arm_features_line_is_read(fake_cpuinfo):
    hw = fake_cpuinfo(ARM, key="Features")
    assert "asimddp" in hw.cpu_flags and hw.isa == "arm64"


def test_isa_profile_is_pure_and_covers_every_profile():
    assert isa_profile(set(), "aarch64") == "arm64"  # no flags to read, the machine says ARM
    assert isa_profile({"AVX2", "AVX512VNNI"}) == "avx512_vnni"  # other spellings (case, no underscore)
    assert isa_profile(set()) == "generic"
    assert {p for _, p in CPUS} | {"arm64"} == set(ISA_PROFILES)


@pytest.mark.parametrize(("flags", "profile"), CPUS, ids=[p for _, p in CPUS])
def test_ort_int8_options_follow_the_profile(fake_cpuinfo, flags, profile):
    from infersweep.trials.runtimes.ort_recipes import int8_options

    fake_cpuinfo(flags)
    options = int8_options()  # this (faked) machine's
    assert options == int8_options(flags.split()) and options["isa"] == profile
    assert options["activation_type"] == "QUInt8" and options["per_channel"]
    # 7-bit weights exactly where u8 x s8 pairs are summed in saturating int16 (no VNNI/AMX)
    assert options["reduce_range"] == (profile in ("avx512", "avx2", "generic"))
    assert options["weight_type"] == "QInt8"


def test_arm_int8_options_are_full_range(fake_cpuinfo):
    from infersweep.trials.runtimes.ort_recipes import int8_options

    fake_cpuinfo(ARM, key="Features")
    assert int8_options() == {"isa": "arm64", "activation_type": "QUInt8", "weight_type": "QInt8",
                              "per_channel": True, "reduce_range": False}
