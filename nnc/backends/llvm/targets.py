"""Target descriptions and LLVM target machines.

A ``Target`` names an LLVM triple, a CPU and a feature string. ``host`` resolves to the
machine nnc runs on. Objects destined for shared libraries use ``reloc="pic"`` and
``codemodel="default"`` (llvmlite's default code model is the JIT's).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm


@functools.cache
def initialize_llvm() -> None:
    """Initialise every LLVM target and asm printer once per process."""
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    """A compilation target: LLVM triple, CPU name and feature string."""

    triple: str
    cpu: str = ""
    features: str = ""

    @property
    def arch(self) -> str:
        """``x86_64``, ``aarch64``, ``arm`` or ``thumb`` (first triple component family)."""
        head = self.triple.split("-")[0]
        if head.startswith("thumb"):
            return "thumb"
        if head.startswith("arm"):
            return "arm"
        return head

    def target_machine(self, opt: int = 3, jit: bool = False) -> llvm.TargetMachine:
        """An LLVM TargetMachine for this target (PIC, small code model unless JIT)."""
        initialize_llvm()
        tgt = llvm.Target.from_triple(self.triple)
        return tgt.create_target_machine(
            cpu=self.cpu,
            features=self.features,
            opt=opt,
            reloc="pic",
            codemodel="jitdefault" if jit else "default",
            jit=jit,
        )


def host_target() -> Target:
    """The machine nnc runs on, with its CPU name and features."""
    initialize_llvm()
    features = llvm.get_host_cpu_features().flatten()
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), features)


def optimize_module(mod: llvm.ModuleRef, tm: llvm.TargetMachine, level: int = 3) -> None:
    """Run LLVM's standard -O<level> pipeline (loop vectorizer included) on ``mod``."""
    pto = llvm.create_pipeline_tuning_options(speed_level=level)
    pto.loop_vectorization = level >= 2
    pto.slp_vectorization = level >= 2
    pto.loop_unrolling = level >= 2
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
