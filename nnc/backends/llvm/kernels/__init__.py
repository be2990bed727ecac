"""Kernel emitters: one LLVM function per (op kind, static shapes, attributes).

Conventions every emitter follows (the code generator relies on them):

* ``emit_<op>(module, name, *, <static params>) -> KernelFn`` adds ONE function named
  ``name`` to ``module`` (helper functions it needs are prefixed ``name.``) and returns
  the function and the scratch bytes it needs.
* Signature: ``void name(float* in0, ..., float* out0, ...[, i8* scratch])`` built with
  ``loops.new_function``: inputs first (in the op's operand order, optional operands
  only when present), then outputs; all buffers dense row-major float32. ``scratch`` is
  present iff ``scratch_bytes > 0``; it is 64-byte aligned and uninitialised.
* Shapes and attributes are compile-time constants baked into the code. No malloc, no
  global state: a kernel may run concurrently on different buffers.
* Outputs never alias inputs.
* Inner loops are contiguous and free of bounds checks (so LLVM vectorizes them) or
  use explicit vector types.
* Transcendentals go through LLVM intrinsics (``llvm.exp.f32``...) or libm (``erff``);
  the shared library links ``-lm``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir


@dataclass(frozen=True)
class KernelFn:
    """An emitted kernel: its LLVM function and the scratch memory it needs."""

    fn: ir.Function
    scratch_bytes: int = 0
