"""parse_target: triples, --mcpu with features, host detection, errors."""

from __future__ import annotations

import pytest

from nnc.backends.llvm.targets import host_target, parse_target
from nnc.errors import TargetError


def test_default_is_host():
    host = host_target()
    for spelling in (None, "host", "native", host.triple):
        t = parse_target(spelling, None)
        assert t.is_host and t.triple == host.triple and t.cpu == host.cpu


def test_host_with_mcpu_drops_host_features():
    t = parse_target(None, "x86-64-v2" if host_target().arch == "x86_64" else "generic")
    assert t.is_host and t.features == ""


def test_aarch64():
    t = parse_target("aarch64-linux-gnu", None)
    assert (t.triple, t.cpu, t.features) == ("aarch64-unknown-linux-gnu", "generic", "+neon")
    assert t.cc == "aarch64-linux-gnu-gcc" and t.pointer_bits == 64 and not t.is_host
    t = parse_target("aarch64-linux-gnu", "cortex-a76+dotprod")
    assert (t.cpu, t.features) == ("cortex-a76", "+neon,+dotprod")
    assert parse_target("aarch64-linux-gnu", "+i8mm").cpu == "generic"


def test_armv7_hard_float_neon():
    t = parse_target("armv7-linux-gnueabihf", None)
    assert t.triple.endswith("gnueabihf") and "+neon" in t.features and t.pointer_bits == 32


def test_cortex_m_spelling_is_fixed():
    a = parse_target("thumbv7em-none-eabihf", None)  # LLVM would silently soft-float this
    b = parse_target("thumbv7em-none-unknown-eabihf", None)
    assert a == b and a.triple == "thumbv7em-none-unknown-eabihf"
    assert a.cpu == "cortex-m7" and a.object_only and a.arch == "thumb"
    assert parse_target("thumbv7em-none-unknown-eabihf", "cortex-m4").cpu == "cortex-m4"


@pytest.mark.parametrize("bad", ["riscv64-linux-gnu", "x86_64-windows-msvc", "nonsense"])
def test_unknown_triple(bad):
    with pytest.raises(TargetError, match="unknown target"):
        parse_target(bad, None)


def test_bad_mcpu_feature():
    with pytest.raises(TargetError, match="bad feature"):
        parse_target("aarch64-linux-gnu", "cortex-a76+")
