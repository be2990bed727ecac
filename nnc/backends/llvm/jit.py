"""In-process JIT of an ``llvmlite.ir`` module, for tests of single kernels.

Shipped models go through object files and shared libraries (see ``link.py``); this is
the quick path for unit tests: compile a module for the host and get function addresses.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from nnc.backends.llvm.targets import host_target, optimize_module


class JitModule:
    """A compiled module kept alive together with its execution engine."""

    def __init__(self, module: ir.Module, opt: int = 3):
        target = host_target()
        tm = target.target_machine(opt=opt, jit=True)
        module.triple = target.triple
        mod = llvm.parse_assembly(str(module))
        mod.verify()
        optimize_module(mod, tm, opt)
        self._engine = llvm.create_mcjit_compiler(mod, tm)
        self._engine.finalize_object()
        self._mod = mod

    def address(self, name: str) -> int:
        """The address of function ``name``."""
        return self._engine.get_function_address(name)

    def call_buffers(self, name: str, arrays: list[np.ndarray], scratch_bytes: int = 0) -> None:
        """Call ``void name(float*...[, i8*])`` with the data pointers of ``arrays``.

        Arrays must be C-contiguous float32; outputs are written in place. A scratch
        buffer of ``scratch_bytes`` is appended when non-zero.
        """
        for a in arrays:
            if a.dtype != np.float32 or not a.flags.c_contiguous:
                raise ValueError("kernel buffers must be C-contiguous float32")
        ptrs = [a.ctypes.data_as(ctypes.c_void_p) for a in arrays]
        scratch = None
        if scratch_bytes:
            scratch = np.zeros(scratch_bytes + 64, dtype=np.uint8)
            ptrs.append(scratch.ctypes.data_as(ctypes.c_void_p))
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))
        proto(self.address(name))(*ptrs)
