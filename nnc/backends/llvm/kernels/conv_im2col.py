"""2-D convolution as explicit im2col + GEMM (``nn.conv`` with ``nn.conv_algo = "im2col"``).

Per image and group: the im2col matrix ``col[(c, kh, kw), p]`` (K = C/group*KH*KW rows,
P = OH*OW columns rounded up to whole micro-tile columns) is materialised in scratch,
zeros where the window reads padding; then ``grid (M/group x Pp) = W_g (M/group x K) @
col`` on the shared GEMM micro-kernel; then ``out = act(grid + bias + residual)``.

Compared with the default kernel (``conv2d.py``, an implicit GEMM that reads the taps of
a phase-split copy of the input in place), this costs K*P floats of scratch and one more
pass over them, but its GEMM has no wasted columns (the default computes OH x (W+pads)
grid columns); it is the conventional baseline and an explicit choice of
``select-conv-algo``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.gemm import (
    GemmPlan,
    MicroCache,
    align64,
    emit_gemm_core,
    scratch_f32,
    tile_shape,
)
from nnc.backends.llvm.loops import f32, for_range, gep, i64, load_at, store_at

Shape = tuple[int, ...]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _fill_col(b, x, col, *, c0, cg, h, w, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, pp) -> None:
    """``col[(ci*kh + i)*kw + j, oy*ow + ox] = x[c0 + ci, oy*sh - pt + i*dh, ...]`` or 0."""
    with for_range(b, 0, cg, name="cc") as ci:
        for i in range(kh):
            for j in range(kw):
                # output columns whose input column is inside [0, w): static per tap
                lo = min(max(0, _ceil_div(pl - j * dw, sw)), ow)
                hi = min(max(lo, _ceil_div(w + pl - j * dw, sw)), ow)
                r = b.add(b.mul(ci, i64(kh * kw)), i64(i * kw + j))
                row = gep(b, col, b.mul(r, i64(pp)))
                src_c = gep(b, x, b.mul(b.add(ci, c0), i64(h * w)))
                with for_range(b, 0, oh, name="oy") as oy:
                    iy = b.add(b.mul(oy, i64(sh)), i64(i * dh - pt))
                    dst = gep(b, row, b.mul(oy, i64(ow)))
                    inside = b.and_(b.icmp_signed(">=", iy, i64(0)), b.icmp_signed("<", iy, i64(h)))
                    with b.if_else(inside) as (then, otherwise):
                        with then:
                            src = gep(b, src_c, b.add(b.mul(iy, i64(w)), i64(j * dw - pl)))
                            for a, z in ((0, lo), (hi, ow)):
                                if z > a:
                                    with for_range(b, a, z, name="zb") as ox:
                                        store_at(b, f32(0.0), dst, ox)
                            if hi > lo:
                                with for_range(b, lo, hi, name="ox") as ox:
                                    store_at(b, load_at(b, src, b.mul(ox, i64(sw))), dst, ox)
                        with otherwise:
                            with for_range(b, 0, ow, name="zr") as ox:
                                store_at(b, f32(0.0), dst, ox)


def emit_conv2d_im2col(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    w_shape: Shape,
    has_bias: bool,
    strides: Shape,
    pads: Shape,
    dilations: Shape,
    group: int,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    has_residual: bool = False,
) -> KernelFn:
    """ONNX Conv (NCHW), same arguments and semantics as ``conv2d.emit_conv2d``."""
    shape = ConvShape.checked(x_shape, w_shape, strides, pads, dilations, group)
    n, c, h, w = x_shape
    m, cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = strides, dilations
    pt, pl, pb, pr = pads
    oh, ow = shape.oh, shape.ow
    tile = tile_shape(module)
    mg, k = m // group, cg * kh * kw
    pp = _ceil_div(oh * ow, tile.nr) * tile.nr
    sizes = [align64(4 * k * pp), align64(4 * m * pp)]
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    x, wts, out = args[0], args[1], args[n_args - 1]
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    col, grid = scratch_f32(b, args[-1], 0), scratch_f32(b, args[-1], sizes[0])
    cache = MicroCache(module, name)
    plan = GemmPlan(mg, pp, k, k, 1, False)
    act = (activation, act_alpha, act_beta)
    geo = dict(cg=cg, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pt=pt, pl=pl,
               oh=oh, ow=ow, pp=pp)  # fmt: skip
    with for_range(b, 0, n, name="img") as ni:
        ximg = gep(b, x, b.mul(ni, i64(c * h * w)))
        with for_range(b, 0, group, name="grp") as gi:
            _fill_col(b, ximg, col, c0=b.mul(gi, i64(cg)), **geo)
            m0 = b.mul(gi, i64(mg))
            a = gep(b, wts, b.mul(m0, i64(k)))
            emit_gemm_core(
                b, cache, plan, tile, a, col, gep(b, grid, b.mul(m0, i64(pp))), None, None
            )
        o_img = b.mul(ni, i64(m * oh * ow))
        with for_range(b, 0, m, name="em") as mi:
            bv = load_at(b, bias, mi) if bias is not None else None
            src = gep(b, grid, b.mul(mi, i64(pp)))
            off = b.add(o_img, b.mul(mi, i64(oh * ow)))
            dst = gep(b, out, off)
            rrow = gep(b, res, off) if res is not None else None
            with for_range(b, 0, oh * ow, name="ep") as j:
                v = load_at(b, src, j)
                if bv is not None:
                    v = b.fadd(v, bv)
                if rrow is not None:
                    v = b.fadd(v, load_at(b, rrow, j))
                store_at(b, emit_activation(b, module, v, *act), dst, j)
    b.ret_void()
    return KernelFn(fn, int(np.sum(sizes)))
