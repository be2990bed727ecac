"""Vector helpers for register-tile epilogues: splat, in-register transpose, masked
loads/stores and vector activations (``<W x float>`` values, any power-of-two ``W``).

LLVM legalises every helper on every target (masked memory ops become plain or
scalarised accesses where the ISA has no masking), so callers never branch on the ISA.
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.loops import F32, I32, VOID

I1 = ir.IntType(1)


def vec_type(width: int) -> ir.VectorType:
    """``<width x float>``."""
    return ir.VectorType(F32, width)


def splat(b: ir.IRBuilder, scalar: ir.Value, vec: ir.VectorType) -> ir.Value:
    """Broadcast an f32 to every lane of ``vec``."""
    one = b.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, vec.count), [0] * vec.count)
    return b.shuffle_vector(one, ir.Constant(vec, ir.Undefined), mask)


def vec_ptr(b: ir.IRBuilder, ptr: ir.Value, index, vec: ir.VectorType) -> ir.Value:
    """``(<W x float>*)&ptr[index]`` (no inbounds: callers may form border pointers)."""
    index = loops.i64(index) if isinstance(index, int) else index
    return b.bitcast(b.gep(ptr, [index]), vec.as_pointer())


def transpose(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """Transpose a ``W x W`` block held as ``W`` vectors (``W`` a power of two).

    ``log2(W)`` stages of two-input shuffles swap the off-diagonal blocks of size 8, 4,
    2, 1: afterwards ``out[r][c] == rows[c][r]``.
    """
    w = len(rows)
    rows = list(rows)
    blk = w // 2
    while blk >= 1:
        lo_mask = [c if (c & blk) == 0 else w + c - blk for c in range(w)]
        hi_mask = [c + blk if (c & blk) == 0 else w + c for c in range(w)]
        lo_c = ir.Constant(ir.VectorType(I32, w), lo_mask)
        hi_c = ir.Constant(ir.VectorType(I32, w), hi_mask)
        for r in range(w):
            if r & blk:
                continue
            a, c = rows[r], rows[r + blk]
            rows[r] = b.shuffle_vector(a, c, lo_c)
            rows[r + blk] = b.shuffle_vector(a, c, hi_c)
        blk //= 2
    return rows


def _mask(width: int, count: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I1, width), [1 if i < count else 0 for i in range(width)])


def store_lanes(b, module, value: ir.Value, ptr: ir.Value, count: int) -> None:
    """Store the first ``count`` lanes of ``value`` at ``ptr`` (unaligned)."""
    vec = value.type
    if count == vec.count:
        b.store(value, b.bitcast(ptr, vec.as_pointer()), align=4)
        return
    mask_t = ir.VectorType(I1, vec.count)
    fname = f"llvm.masked.store.v{vec.count}f32.p0"
    fn = loops.intrinsic(module, fname, VOID, [vec, vec.as_pointer(), I32, mask_t])
    vptr = b.bitcast(ptr, vec.as_pointer())
    b.call(fn, [value, vptr, ir.Constant(I32, 4), _mask(vec.count, count)])


def load_lanes(b, module, vec: ir.VectorType, ptr: ir.Value, count: int) -> ir.Value:
    """Load ``count`` floats at ``ptr`` into the first lanes of a ``vec`` (others zero)."""
    if count == vec.count:
        return b.load(b.bitcast(ptr, vec.as_pointer()), align=4)
    fname = f"llvm.masked.load.v{vec.count}f32.p0"
    args = [vec.as_pointer(), I32, ir.VectorType(I1, vec.count), vec]
    fn = loops.intrinsic(module, fname, vec, args)
    vptr, zero = b.bitcast(ptr, vec.as_pointer()), ir.Constant(vec, None)
    return b.call(fn, [vptr, ir.Constant(I32, 4), _mask(vec.count, count), zero])


def vector_activation(b, module, x: ir.Value, kind: str, alpha: float, beta: float) -> ir.Value:
    """``kind`` applied lane-wise to the vector ``x``.

    relu / leaky_relu / clip / none are native vector ops; every other kind goes through
    the scalar emitter of ``activation.py`` lane by lane (same results, slower).
    """
    vec = x.type
    if kind == "none":
        return x
    if kind in ("relu", "clip"):
        lo = 0.0 if kind == "relu" else alpha
        fmax = loops.intrinsic(module, f"llvm.maxnum.v{vec.count}f32", vec, [vec, vec])
        x = b.call(fmax, [x, splat(b, loops.f32(lo), vec)])
        if kind == "clip":
            fmin = loops.intrinsic(module, f"llvm.minnum.v{vec.count}f32", vec, [vec, vec])
            x = b.call(fmin, [x, splat(b, loops.f32(beta), vec)])
        return x
    if kind == "leaky_relu":
        neg = b.fcmp_ordered("<", x, ir.Constant(vec, None))
        return b.select(neg, b.fmul(x, splat(b, loops.f32(alpha), vec)), x)
    out = ir.Constant(vec, ir.Undefined)
    for lane in range(vec.count):
        idx = ir.Constant(I32, lane)
        y = emit_activation(b, module, b.extract_element(x, idx), kind, alpha, beta)
        out = b.insert_element(out, y, idx)
    return out
