"""Quantize / dequantize / requantize kernels: plain loops implementing the contract of
``nnc/ir/ops_quant.py`` bit for bit (float32, one rounding per operation, no FMA,
``llvm.rint`` = round half to even in the default floating-point environment).

    quantize:    q = clamp(rint(x / s[c]) + zp[c], qmin, qmax)     (NaN -> zp)
    dequantize:  y = f32(q - zp[c]) * s[c]
    requantize:  y = clamp(rint(f32(q - x_zp) * m) + y_zp, qmin, qmax),  m = f32(xs) / f32(ys)

Big tensors are cut into blocks of ``FLAT_BLOCK`` elements on the thread pool (work =
bytes moved; every element's code is the same whatever the blocks).

Per-tensor, per-channel (channel = ``(flat index // inner) % C`` for the ``axis``) and
per-group (blocked, ONNX opset 21) parameters: the table has the tensor's shape with
``G = ceil(C / group_size)`` at ``axis``, element ``(o, c, r)`` (outer, axis, inner
coordinates) uses entry ``(o * G + c // group_size) * inner + r`` (when ``group_size``
divides ``C``: ``(flat // (group_size * inner)) * inner + r``), exactly as
``ops_quant.expand_params``. Args: ``x, y`` (pointers are passed as ``float*`` and
bitcast to the element type).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.elementwise import FLAT_BLOCK
from nnc.backends.llvm.loops import F32, i64
from nnc.backends.llvm.parallel import parallel_blocks
from nnc.ir.ops_quant import qrange

I8 = ir.IntType(8)
I32 = ir.IntType(32)
_INT_TYPES = {"i8": I8, "u8": I8, "i32": I32}
_BYTES = {"i8": 1, "u8": 1, "i32": 4}


def _flat_loop(b: ir.IRBuilder, size: int, args, in_ty, out_ty, elem, nbytes: int) -> None:
    """``for i < size: elem(b, src, dst, i)`` over ``args = (x, y)`` bitcast to
    ``in_ty*`` / ``out_ty*``, in parallel blocks when big (``nbytes`` per element)."""

    def body(bb, start, stop, a):
        src, dst = bb.bitcast(a[0], in_ty.as_pointer()), bb.bitcast(a[1], out_ty.as_pointer())
        with loops.for_range(bb, start, stop) as i:
            elem(bb, src, dst, i)

    parallel_blocks(b, size, FLAT_BLOCK, list(args), body, work=size * nbytes)


def _rint(b: ir.IRBuilder, module: ir.Module, v: ir.Value) -> ir.Value:
    return b.call(loops.intrinsic(module, "llvm.rint.f32", F32, [F32]), [v])


def _clamp(b: ir.IRBuilder, v: ir.Value, lo: float, hi: float) -> ir.Value:
    v = b.select(b.fcmp_ordered("<", v, loops.f32(lo)), loops.f32(lo), v)
    return b.select(b.fcmp_ordered(">", v, loops.f32(hi)), loops.f32(hi), v)


def _load_int(b: ir.IRBuilder, ptr: ir.Value, i: ir.Value, dtype: str) -> ir.Value:
    v = loops.load_at(b, ptr, i)
    if dtype == "i32":
        return v
    return b.zext(v, I32) if dtype == "u8" else b.sext(v, I32)


def _table(module: ir.Module, name: str, values: np.ndarray, ty: ir.Type) -> ir.Value:
    arr_ty = ir.ArrayType(ty, len(values))
    g = ir.GlobalVariable(module, arr_ty, name=name)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr_ty, [ir.Constant(ty, v.item()) for v in values])
    return g


class _Params:
    """Per-element scale / zero point: constants (per-tensor) or tables indexed by channel
    (per-channel) or by (outer, group, inner) position (per-group, ``group_size > 0``)."""

    def __init__(self, b, module, name, shape, axis, scale, zp, group_size=0):
        scale = np.asarray(scale, np.float32).reshape(-1)
        zp = np.asarray(zp, np.int64).reshape(-1)
        self.per_tensor = scale.size == 1
        if self.per_tensor:
            self.s, self.z = loops.f32(float(scale[0])), ir.Constant(I32, int(zp[0]))
            return
        axis %= len(shape)
        self.inner = math.prod(shape[axis + 1 :])
        self.channels = shape[axis]
        self.group = group_size
        if group_size:
            groups = -(-self.channels // group_size)
            want = math.prod(shape[:axis]) * groups * self.inner
            if scale.size != want or zp.size != want:
                raise ValueError(f"per-group table of {scale.size} entries, expected {want}")
            self.groups = groups
        self.s_tab = _table(module, f"{name}.scale", scale, F32)
        self.z_tab = _table(module, f"{name}.zp", zp.astype(np.int32), I32)

    def _group_index(self, b: ir.IRBuilder, i: ir.Value) -> ir.Value:
        """Table entry of flat element ``i`` for per-group parameters."""
        inner, gs = i64(self.inner), self.group
        r = b.urem(i, inner)
        if self.channels % gs == 0:  # whole groups: one division finds (outer, group)
            return b.add(b.mul(b.udiv(i, i64(gs * self.inner)), inner), r)
        outer = b.udiv(i, i64(self.channels * self.inner))
        c = b.urem(b.udiv(i, inner), i64(self.channels))
        og = b.add(b.mul(outer, i64(self.groups)), b.udiv(c, i64(gs)))
        return b.add(b.mul(og, inner), r)

    def at(self, b: ir.IRBuilder, i: ir.Value) -> tuple[ir.Value, ir.Value]:
        if self.per_tensor:
            return self.s, self.z
        if self.group:
            c = self._group_index(b, i)
        else:
            c = b.urem(b.udiv(i, i64(self.inner)), i64(self.channels))
        s = b.load(b.gep(self.s_tab, [i64(0), c], inbounds=True))
        z = b.load(b.gep(self.z_tab, [i64(0), c], inbounds=True))
        return s, z


def emit_quantize(
    module: ir.Module,
    name: str,
    *,
    shape,
    scale,
    zp,
    axis: int,
    dtype: str,
    group_size: int = 0,
) -> KernelFn:
    """``y = clamp(rint(x / s) + zp)`` to i8/u8 (see module docstring)."""
    fn, b, (x, y) = loops.new_function(module, name, 2)
    params = _Params(b, module, name, shape, axis, scale, zp, group_size)
    qmin, qmax = qrange(dtype)

    def elem(b, x, out, i):
        s, z = params.at(b, i)
        zf = b.sitofp(z, F32)
        v = b.fadd(_rint(b, module, b.fdiv(loops.load_at(b, x, i), s)), zf)
        v = b.select(b.fcmp_unordered("uno", v, v), zf, v)  # NaN -> zero point
        q = b.fptosi(_clamp(b, v, qmin, qmax), I32)
        loops.store_at(b, b.trunc(q, I8), out, i)

    _flat_loop(b, math.prod(shape), (x, y), F32, I8, elem, 5)
    b.ret_void()
    return KernelFn(fn)


def emit_dequantize(
    module: ir.Module,
    name: str,
    *,
    shape,
    scale,
    zp,
    axis: int,
    in_dtype: str,
    group_size: int = 0,
) -> KernelFn:
    """``y = f32(q - zp) * s`` from i8/u8/i32 (see module docstring)."""
    fn, b, (x, y) = loops.new_function(module, name, 2)
    params = _Params(b, module, name, shape, axis, scale, zp, group_size)

    def elem(b, src, y, i):
        s, z = params.at(b, i)
        q = _load_int(b, src, i, in_dtype)
        loops.store_at(b, b.fmul(b.sitofp(b.sub(q, z), F32), s), y, i)

    nbytes = _BYTES[in_dtype] + 4
    _flat_loop(b, math.prod(shape), (x, y), _INT_TYPES[in_dtype], F32, elem, nbytes)
    b.ret_void()
    return KernelFn(fn)


def emit_requantize(
    module: ir.Module,
    name: str,
    *,
    shape,
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    in_dtype: str,
    dtype: str,
) -> KernelFn:
    """``y = clamp(rint(f32(q - x_zp) * m) + y_zp)``, ``m = f32(x_scale) / f32(y_scale)``."""
    fn, b, (x, y) = loops.new_function(module, name, 2)
    m = float(np.float32(x_scale) / np.float32(y_scale))
    qmin, qmax = qrange(dtype)

    def elem(b, src, out, i):
        q = b.sub(_load_int(b, src, i, in_dtype), ir.Constant(I32, x_zp))
        t = _rint(b, module, b.fmul(b.sitofp(q, F32), loops.f32(m)))
        v = _clamp(b, b.fadd(t, loops.f32(float(y_zp))), qmin, qmax)
        loops.store_at(b, b.trunc(b.fptosi(v, I32), I8), out, i)

    _flat_loop(b, math.prod(shape), (x, y), I8, I8, elem, 2)
    b.ret_void()
    return KernelFn(fn)
