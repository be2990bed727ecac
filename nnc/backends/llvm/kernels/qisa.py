"""Choice of the int8 dot-product instruction set for a target (compile-time feature gating).

An ``QIsa`` names the instruction the integer micro-kernel is built on, the number
``group`` of consecutive reduction (k) elements one 32-bit lane consumes per step, the
vector width in i32 lanes and the register tile. ``select_qisa(target)`` picks it from
the target's CPU and features, never from the machine nnc runs on (unless the target is
the host):

======== ===== ===== ======================================================================
name     group width instruction (activations x weights -> i32 accumulate)
======== ===== ===== ======================================================================
vnni512  4     16    ``vpdpbusd zmm`` (avx512vnni + avx512bw): u8 x s8, 4 products per lane
vnni256  4     8     ``vpdpbusd ymm`` (avxvnni, or avx512vnni + avx512vl)
madd512  2     16    ``vpmaddwd zmm`` (avx512bw) on operands widened to i16 first: the i16
                     products of u8/s8 values cannot saturate (unlike ``vpmaddubsw``)
madd256  2     8     ``vpmaddwd ymm`` (avx2), same widening
sdot     4     4     AArch64 ``sdot`` (+dotprod): s8 x s8, 4 products per lane
widen    1     4     portable widening multiply-accumulate (NEON ``smlal``, SSE2 ...)
======== ===== ===== ======================================================================

``act_domain`` is how activation bytes are stored for the kernel: ``u8`` (VNNI reads
its first operand unsigned: s8 activations are stored ``x ^ 0x80`` = ``x + 128`` with the
zero point moved by +128), ``s8`` (sdot is signed x signed: u8 activations are stored
``x ^ 0x80`` = ``x - 128``, zero point moved by -128), ``raw`` (bytes as given, widened
by their own signedness). The shift is exact because only ``x - x_zp`` enters the math.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnc.backends.llvm.targets import Target, host_target

_AVX2 = {"avx", "avx2", "fma"}
_AVX512BW = _AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}
_VNNI512 = _AVX512BW | {"avx512vnni"}

#: Features implied by x86 CPU names (only those that matter here).
X86_CPU_FEATURES: dict[str, set[str]] = {
    **{c: _AVX2 for c in ("haswell", "broadwell", "skylake", "znver1", "znver2", "znver3",
                          "x86-64-v3", "bdver4")},
    **{c: _AVX2 | {"avxvnni"} for c in ("alderlake", "raptorlake", "meteorlake", "arrowlake",
                                         "sierraforest", "gracemont")},
    **{c: _AVX512BW for c in ("skylake-avx512", "x86-64-v4", "cannonlake")},
    **{c: _VNNI512 for c in ("cascadelake", "cooperlake", "icelake-client", "icelake-server",
                             "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
                             "graniterapids", "znver4", "znver5")},
}  # fmt: skip

#: AArch64 CPU names with the dot-product extension.
AARCH64_DOTPROD_CPUS = frozenset(
    """cortex-a55 cortex-a65 cortex-a75 cortex-a76 cortex-a76ae cortex-a77 cortex-a78
    cortex-a78c cortex-a710 cortex-a715 cortex-a720 cortex-x1 cortex-x2 cortex-x3 cortex-x4
    neoverse-n1 neoverse-n2 neoverse-v1 neoverse-v2 neoverse-512tvb apple-a12 apple-a13
    apple-a14 apple-a15 apple-a16 apple-m1 apple-m2 apple-m3 ampere1 ampere1a""".split()
)


@dataclass(frozen=True)
class QIsa:
    """An int8 micro-kernel flavour: instruction, k group, i32 lanes and register tile."""

    name: str
    group: int
    width: int
    mr: int
    nrv: int
    act_domain: str

    @property
    def nr(self) -> int:
        """Columns (i32 lanes) of one register tile."""
        return self.width * self.nrv


ISAS: dict[str, QIsa] = {
    "vnni512": QIsa("vnni512", 4, 16, 8, 3, "u8"),
    "vnni256": QIsa("vnni256", 4, 8, 6, 2, "u8"),
    "madd512": QIsa("madd512", 2, 16, 8, 3, "raw"),
    "madd256": QIsa("madd256", 2, 8, 6, 2, "raw"),
    "sdot": QIsa("sdot", 4, 4, 8, 3, "s8"),
    "widen": QIsa("widen", 1, 4, 4, 4, "raw"),
}


def target_features(target: Target) -> set[str]:
    """Feature names (no sign) enabled on ``target``: the CPU's, then ``+f``/``-f`` items."""
    feats: set[str] = set()
    if target.arch == "x86_64":
        feats |= X86_CPU_FEATURES.get(target.cpu, set())
    elif target.arch == "aarch64" and target.cpu in AARCH64_DOTPROD_CPUS:
        feats.add("dotprod")
    for item in target.features.split(","):
        item = item.strip()
        if item.startswith("+"):
            feats.add(item[1:])
        elif item.startswith("-"):
            feats.discard(item[1:])
    return feats


def select_qisa(target: Target | None = None) -> QIsa:
    """The best int8 kernel flavour ``target`` (default: the host) is guaranteed to run."""
    target = target or host_target()
    f = target_features(target)
    if target.arch == "x86_64":
        if {"avx512vnni", "avx512bw", "avx512f"} <= f:
            return ISAS["vnni512"]
        if "avxvnni" in f or {"avx512vnni", "avx512vl"} <= f:
            return ISAS["vnni256"]
        if {"avx512bw", "avx512f"} <= f:
            return ISAS["madd512"]
        if "avx2" in f:
            return ISAS["madd256"]
        return ISAS["widen"]
    if target.arch == "aarch64":
        return ISAS["sdot"] if "dotprod" in f else ISAS["widen"]
    return ISAS["widen"]


def module_target(module) -> Target:
    """The target a kernel module is compiled for.

    The code generator may attach it as ``module.nnc_target``; otherwise the host when
    the module's triple is unset or of the host's architecture, else the known cross
    target of that triple with its default CPU (conservative features).
    """
    target = getattr(module, "nnc_target", None)
    if target is not None:
        return target
    host = host_target()
    triple = getattr(module, "triple", "") or ""
    arch = triple.split("-")[0]
    if not triple or triple.startswith("unknown") or arch == host.arch:
        return host
    from nnc.backends.llvm.targets import KNOWN_TARGETS

    for known in KNOWN_TARGETS.values():
        if known.triple.split("-")[0] == arch or known.arch == arch:
            return known
    return Target(triple)
