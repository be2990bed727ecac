"""Target descriptions and LLVM target machines.

A ``Target`` names an LLVM triple, a CPU and a feature string, plus the toolchain that
links its objects. ``parse_target`` maps the command line's ``--target``/``--mcpu`` to
one of the supported targets:

* host (default): ``get_process_triple``, ``get_host_cpu_name`` and the host features;
* ``aarch64-linux-gnu``: CPU ``generic`` (or ``--mcpu``) with ``+neon``;
* ``armv7-linux-gnueabihf``: ARMv7-A, ``+neon``, hard-float ABI;
* ``thumbv7em-none-unknown-eabihf``: Cortex-M7 (default), hard float, object only.

``--mcpu`` may carry extra features clang-style: ``cortex-a76+dotprod`` or ``+dotprod``
alone. Objects destined for shared libraries use ``reloc="pic"`` and
``codemodel="default"`` (llvmlite's default code model is the JIT's); bare-metal objects
use ``reloc="static"`` (firmware has no GOT).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import llvmlite.binding as llvm

from nnc.errors import TargetError


@functools.cache
def initialize_llvm() -> None:
    """Initialise every LLVM target and asm printer once per process."""
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    """A compilation target: LLVM triple, CPU, features and the toolchain that links it.

    ``cc``/``ar`` are the C compiler and archiver for shared and static libraries;
    ``package`` is the Debian package providing ``cc`` when it is a cross compiler.
    ``object_only`` targets (bare-metal) get objects, static archives and assembly only.
    """

    triple: str
    cpu: str = ""
    features: str = ""
    name: str = "host"
    cc: str = "cc"
    ar: str = "ar"
    package: str = ""
    object_only: bool = False

    @property
    def arch(self) -> str:
        """``x86_64``, ``aarch64``, ``arm`` or ``thumb`` (first triple component family)."""
        head = self.triple.split("-")[0]
        if head.startswith("thumb"):
            return "thumb"
        if head.startswith("arm") and not head.startswith("arm64"):
            return "arm"
        if head == "arm64":
            return "aarch64"
        return head

    @property
    def pointer_bits(self) -> int:
        """Width of a pointer / ``size_t`` on this target."""
        return 32 if self.arch in ("arm", "thumb", "i386", "i686") else 64

    @property
    def is_host(self) -> bool:
        """True when code for this target runs on the machine nnc runs on."""
        return self.name == "host"

    def describe(self) -> str:
        """``triple (cpu, features)`` for reports and generated headers."""
        extra = ", ".join(x for x in (self.cpu, self.features if not self.is_host else "") if x)
        return f"{self.triple} ({extra})" if extra else self.triple

    def target_machine(self, opt: int = 3, jit: bool = False) -> llvm.TargetMachine:
        """An LLVM TargetMachine (default code model unless JIT; PIC except bare metal)."""
        initialize_llvm()
        try:
            tgt = llvm.Target.from_triple(self.triple)
        except RuntimeError as err:
            raise TargetError(f"LLVM does not support triple {self.triple!r}: {err}") from None
        return tgt.create_target_machine(
            cpu=self.cpu,
            features=self.features,
            opt=opt,
            reloc="static" if self.object_only else "pic",
            codemodel="jitdefault" if jit else "default",
            jit=jit,
        )


def host_target() -> Target:
    """The machine nnc runs on, with its CPU name and features."""
    initialize_llvm()
    features = llvm.get_host_cpu_features().flatten()
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), features)


_AARCH64 = Target(
    "aarch64-unknown-linux-gnu",
    "generic",
    "+neon",
    name="aarch64-linux-gnu",
    cc="aarch64-linux-gnu-gcc",
    ar="aarch64-linux-gnu-ar",
    package="gcc-aarch64-linux-gnu",
)
_ARMV7 = Target(
    "armv7-unknown-linux-gnueabihf",
    "generic",
    "+neon,+vfp3",
    name="armv7-linux-gnueabihf",
    cc="arm-linux-gnueabihf-gcc",
    ar="arm-linux-gnueabihf-ar",
    package="gcc-arm-linux-gnueabihf",
)
# Spelled with the explicit "unknown" vendor: "thumbv7em-none-eabihf" silently gives
# soft-float in LLVM, so that spelling is accepted as an alias of this one.
_CORTEX_M = Target(
    "thumbv7em-none-unknown-eabihf",
    "cortex-m7",
    "",
    name="thumbv7em-none-unknown-eabihf",
    cc="arm-none-eabi-gcc",
    ar="arm-none-eabi-ar",
    package="gcc-arm-none-eabi",
    object_only=True,
)

#: Accepted ``--target`` spellings -> the target they select.
KNOWN_TARGETS: dict[str, Target] = {
    "aarch64-linux-gnu": _AARCH64,
    "aarch64-unknown-linux-gnu": _AARCH64,
    "aarch64-none-linux-gnu": _AARCH64,
    "armv7-linux-gnueabihf": _ARMV7,
    "armv7-unknown-linux-gnueabihf": _ARMV7,
    "armv7a-linux-gnueabihf": _ARMV7,
    "arm-linux-gnueabihf": _ARMV7,
    "thumbv7em-none-unknown-eabihf": _CORTEX_M,
    "thumbv7em-none-eabihf": _CORTEX_M,
}
_HOST_NAMES = ("host", "native")


def _split_mcpu(mcpu: str) -> tuple[str, list[str]]:
    """``"cortex-a76+dotprod+i8mm"`` -> ("cortex-a76", ["+dotprod", "+i8mm"])."""
    cpu, *extras = mcpu.split("+")
    feats = []
    for e in extras:
        if not e or not all(c.isalnum() or c in "-_." for c in e):
            raise TargetError(f"bad feature {e!r} in --mcpu {mcpu!r}")
        feats.append(e if e.startswith("-") else f"+{e}")
    return cpu.strip(), feats


def _is_host_triple(triple: str, host: Target) -> bool:
    if triple == host.triple:
        return True
    arch, _, rest = triple.partition("-")
    return arch == host.arch and rest in ("linux-gnu", "unknown-linux-gnu", "pc-linux-gnu")


def parse_target(triple: str | None = None, mcpu: str | None = None) -> Target:
    """The ``Target`` for a ``--target`` triple (None/"host" = this machine) and ``--mcpu``.

    ``mcpu`` replaces the default CPU (host CPU, ``generic``, ``cortex-m7``); it may end in
    ``+feature`` items which are appended to the target's features. Raises ``TargetError``
    for an unknown triple.
    """
    cpu, extra = _split_mcpu(mcpu) if mcpu else ("", [])
    host = host_target()
    if triple is None or triple in _HOST_NAMES or _is_host_triple(triple, host):
        base = host
        if cpu:  # an explicit CPU implies its own features; host features would override it
            base = replace(host, features="")
    elif triple in KNOWN_TARGETS:
        base = KNOWN_TARGETS[triple]
    else:
        known = ", ".join(sorted({t.name for t in KNOWN_TARGETS.values()}))
        raise TargetError(f"unknown target {triple!r}; supported: host, {known}")
    features = ",".join(f for f in [*base.features.split(","), *extra] if f)
    return replace(base, cpu=cpu or base.cpu, features=features)


def optimize_module(mod: llvm.ModuleRef, tm: llvm.TargetMachine, level: int = 3) -> None:
    """Run LLVM's standard -O<level> pipeline (loop vectorizer included) on ``mod``."""
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = level >= 2
    pto.slp_vectorization = level >= 2
    pto.loop_unrolling = level >= 2
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
