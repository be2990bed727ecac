"""Weight-only decode: the vector decoder of the ``wq16`` layout (``decode_rows``, used by
the dequant-in-GEMM kernels ``wq_gemm.py`` / ``wq_conv.py``), and the fallback layer for
weights that are not constants (or grouped convs).

Fallback (``emit_wq_layer``): the compressed weight stays compressed in the library;
each run decodes all of it into scratch as float32 (the contract of
``nnc/ir/ops_quant.py``: ``W = f32(q - zp) * f32(scale)`` per group, int4 two per byte
with the low nibble first, f16 widened, bf16 = bits << 16) and calls the float conv /
gemm kernel on it. The decode is exact, so results equal the float
layer on the decoded weight (the float kernels' own tolerance vs the interpreter).

Args: ``x, w_stored, [bias], [residual], out, scratch``.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.loops import F32, i64

I8, I16, I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
V16F = ir.VectorType(F32, 16)


def _v(ty: ir.Type, n: int) -> ir.VectorType:
    return ir.VectorType(ty, n)


def _vload(b: ir.IRBuilder, ptr: ir.Value, offset, vty: ir.VectorType) -> ir.Value:
    """Unaligned load of ``vty`` at byte ``offset`` of the i8* ``ptr``."""
    offset = i64(offset) if isinstance(offset, int) else offset
    return b.load(b.bitcast(b.gep(ptr, [offset], inbounds=True), vty.as_pointer()), align=1)


def decode_row(b: ir.IRBuilder, storage: str, row: ir.Value, sv, zv) -> ir.Value:
    """One ``wq16`` block row (16 channels at one k; ``row`` = i8* to its bytes) as
    ``<16 x float>``: ``(f32(q) - zv) * sv`` for integer storages (``zv`` None when
    symmetric), the widened value for f16/bf16 (``wq_pack.py``; exact contract decode)."""
    if storage == "f16":
        return b.fpext(_vload(b, row, 0, _v(ir.HalfType(), 16)), V16F)
    if storage == "bf16":
        bits = b.zext(_vload(b, row, 0, _v(I16, 16)), _v(I32, 16))
        return b.bitcast(b.shl(bits, ir.Constant(_v(I32, 16), [16] * 16)), V16F)
    if storage == "i8":
        f = b.sitofp(_vload(b, row, 0, _v(I8, 16)), V16F)
    else:
        # nibbles in i32 lanes (x86 has no byte shifts): zext, mask/shift, concatenate
        raw = b.zext(_vload(b, row, 0, _v(I8, 8)), _v(I32, 8))
        lo = b.and_(raw, ir.Constant(_v(I32, 8), [15] * 8))
        hi = b.lshr(raw, ir.Constant(_v(I32, 8), [4] * 8))
        q = b.shuffle_vector(lo, hi, ir.Constant(_v(I32, 16), list(range(16))))
        if storage == "i4":  # two's complement nibble: (q ^ 8) - 8
            eight = ir.Constant(_v(I32, 16), [8] * 16)
            q = b.sub(b.xor(q, eight), eight)
        f = b.sitofp(q, V16F)
    if zv is not None:
        f = b.fsub(f, zv)
    return b.fmul(f, sv)


def split(b: ir.IRBuilder, v: ir.Value, width: int) -> list[ir.Value]:
    """A ``<16 x float>`` as ``16 / width`` vectors of ``width`` lanes."""
    if width == 16:
        return [v]
    undef = ir.Constant(V16F, ir.Undefined)
    return [
        b.shuffle_vector(v, undef, ir.Constant(_v(I32, width), list(range(i, i + width))))
        for i in range(0, 16, width)
    ]


class GroupParams:
    """Loads of the ``wq16`` scale / zero-point vectors of (block, group)."""

    def __init__(self, b: ir.IRBuilder, lay, base: ir.Value):
        self.lay = lay
        self.scale = b.gep(base, [i64(lay.scale_offset)], inbounds=True) if lay.has_scale else None
        self.zp = b.gep(base, [i64(lay.zp_offset)], inbounds=True) if lay.has_zp else None

    def at(self, b: ir.IRBuilder, blk, g) -> tuple[ir.Value | None, ir.Value | None]:
        """(scale, zp) ``<16 x float>`` of block ``blk``, group ``g`` (None when absent)."""
        if self.scale is None:
            return None, None
        off = b.mul(b.add(b.mul(_iv(blk), i64(self.lay.groups)), _iv(g)), i64(64))
        zv = _vload(b, self.zp, off, V16F) if self.zp is not None else None
        return _vload(b, self.scale, off, V16F), zv


def row_ptr(b: ir.IRBuilder, lay, base: ir.Value, blk, k) -> ir.Value:
    """i8* to the codes of block ``blk`` at reduction row ``k``."""
    idx = b.mul(b.add(b.mul(_iv(blk), i64(lay.k)), _iv(k)), i64(lay.row_bytes))
    return b.gep(base, [idx], inbounds=True)


def _iv(v) -> ir.Value:
    return i64(v) if isinstance(v, int) else v


def _align64(n: int) -> int:
    return (n + 63) // 64 * 64


def _table(module: ir.Module, name: str, values: np.ndarray, ty: ir.Type) -> ir.Value:
    arr_ty = ir.ArrayType(ty, max(len(values), 1))
    g = ir.GlobalVariable(module, arr_ty, name=name)
    g.global_constant = True
    g.linkage = "internal"
    vals = [ir.Constant(ty, v.item()) for v in values] or [ir.Constant(ty, 0)]
    g.initializer = ir.Constant(arr_ty, vals)
    return g


def _emit_decode(b, module, name, w, dst, n, k, storage, group_size, scale, zp) -> None:
    """``dst[r*k + j] = decode(w, r, j)`` for the whole (n, k) weight."""
    if storage == "f16":
        src = b.bitcast(w, ir.HalfType().as_pointer())
    elif storage == "bf16":
        src = b.bitcast(w, I16.as_pointer())
    else:
        src = b.bitcast(w, I8.as_pointer())
    g = math.ceil(k / group_size) if group_size else 1
    if storage not in ("f16", "bf16"):
        s_tab = _table(module, f"{name}.scale", np.asarray(scale, np.float32).reshape(-1), F32)
        z = np.asarray(zp, np.int32).reshape(-1)
        z_tab = _table(module, f"{name}.zp", z if z.size else np.zeros(n * g, np.int32), I32)
    kw = (k + 1) // 2 if storage in ("i4", "u4") else k
    with loops.for_range(b, 0, n, name="wr") as r, loops.for_range(b, 0, k, name="wk") as j:
        out_idx = b.add(b.mul(r, i64(k)), j)
        if storage == "f16":
            v = b.fpext(loops.load_at(b, src, out_idx), F32)
        elif storage == "bf16":
            bits = b.shl(b.zext(loops.load_at(b, src, out_idx), I32), ir.Constant(I32, 16))
            v = b.bitcast(bits, F32)
        else:
            if storage == "i8":
                q = b.sext(loops.load_at(b, src, out_idx), I32)
            else:
                byte = loops.load_at(b, src, b.add(b.mul(r, i64(kw)), b.udiv(j, i64(2))))
                odd = b.trunc(b.urem(j, i64(2)), ir.IntType(1))
                nib = b.select(
                    odd, b.lshr(byte, ir.Constant(I8, 4)), b.and_(byte, ir.Constant(I8, 0xF))
                )
                q = b.zext(nib, I32)
                if storage == "i4":  # two's complement nibble
                    q = b.sub(
                        q,
                        b.select(
                            b.icmp_unsigned(">=", q, ir.Constant(I32, 8)),
                            ir.Constant(I32, 16),
                            ir.Constant(I32, 0),
                        ),
                    )
            gi = b.udiv(j, i64(group_size)) if group_size else i64(0)
            pi = b.add(b.mul(r, i64(g)), gi)
            s = b.load(b.gep(s_tab, [i64(0), pi], inbounds=True))
            zv = b.load(b.gep(z_tab, [i64(0), pi], inbounds=True))
            v = b.fmul(b.sitofp(b.sub(q, zv), F32), s)
        loops.store_at(b, v, dst, out_idx)


def emit_wq_layer(
    module: ir.Module,
    name: str,
    *,
    kind: str,
    x_shape,
    w_shape,
    storage: str,
    group_size: int,
    scale,
    zp,
    has_bias: bool,
    has_residual: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    group: int = 1,
) -> KernelFn:
    """Decode the weight into scratch, then run the float conv/gemm (module docstring)."""
    n, k = int(w_shape[0]), int(math.prod(w_shape[1:]))
    epi = dict(activation=activation, act_alpha=act_alpha, act_beta=act_beta)
    if kind == "conv":
        from nnc.backends.llvm.kernels.conv2d import emit_conv2d

        inner = emit_conv2d(
            module, f"{name}.inner", x_shape=tuple(x_shape), w_shape=tuple(w_shape),
            has_bias=has_bias, strides=strides, pads=pads, dilations=dilations, group=group,
            has_residual=has_residual, **epi,
        )  # fmt: skip
    else:
        from nnc.backends.llvm.kernels.gemm import emit_gemm

        if has_residual:
            raise ValueError("wq gemm with a residual has no native kernel")
        m = int(math.prod(x_shape[:-1]))
        inner = emit_gemm(
            module, f"{name}.inner", a_shape=(m, k), b_shape=(n, k), trans_a=False,
            trans_b=True, alpha=1.0, beta=1.0, c_shape=(n,) if has_bias else None, **epi,
        )  # fmt: skip
    w_bytes = _align64(4 * n * k)
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    scratch = args[-1]
    dst = b.bitcast(scratch, F32.as_pointer())
    _emit_decode(b, module, name, args[1], dst, n, k, storage, group_size, scale, zp)
    call_args = [args[0], dst, *args[2:n_args]]
    if inner.scratch_bytes:
        call_args.append(loops.gep(b, scratch, w_bytes))
    b.call(inner.fn, call_args)
    b.ret_void()
    return KernelFn(fn, w_bytes + inner.scratch_bytes)
