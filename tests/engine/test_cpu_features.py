"""ivos.runtime.cpu_features: whether ONNX Runtime's int8 kernels can saturate on this CPU."""
import pytest

from ivos.runtime import cpu_features


@pytest.mark.parametrize(("machine", "flags", "saturate"), [
    ("x86_64", {"sse4_1", "avx2", "fma"}, True),                     # AVX2 only (e.g. AMD EPYC Zen 2/3)
    ("x86_64", {"avx2", "avx512f", "avx512bw"}, True),               # AVX-512 without VNNI (Skylake-SP)
    ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),           # Cascade Lake and later
    ("x86_64", {"avx2", "avx_vnni"}, False),                         # Alder Lake
    ("x86_64", set(), False),                                        # flags unreadable: unknown, no claim
    ("aarch64", {"asimd"}, False),
])
def test_saturation_needs_a_known_x86_cpu_without_vnni(monkeypatch, machine, flags, saturate):
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: machine)
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset(flags))
    assert cpu_features.int8_kernels_saturate() is saturate


def test_flags_of_this_machine_are_read_on_linux():
    flags = cpu_features.cpu_flags()
    assert isinstance(flags, frozenset)
    if cpu_features.platform.machine() == "x86_64" and cpu_features.platform.system() == "Linux":
        assert "sse2" in flags  # every x86-64 CPU has it
