"""Winograd F(m x m, 3 x 3) convolution kernel (``nn.winograd_conv``), m = 2 or 4.

Per image, with T = m + 2, tiles ``th x tw = ceil(OH/m) x ceil(OW/m)``, P = th*tw tiles
and Pp = P rounded up to whole micro-tile columns:

1. pad: copy x into a zero-bordered plane ``xp`` (C, th*m+2, tw*m+2) so every tile's
   T x T input patch is in bounds;
2. input transform: ``V[xi, c, p] = (B^T d B)[xi]`` for the patch d of tile p, channel c
   (straight-line code, the matrix entries are constants; 0/±1 cost no multiplication);
3. batched GEMM over the T*T positions: ``Mx[xi] (M x Pp) = U[xi] (M x C) @ V[xi] (C x Pp)``
   on the shared SIMD micro-kernel (``gemm.emit_gemm_core``), U = the compile-time
   transformed weights ``G g G^T``;
4. output transform ``A^T Mx A`` per tile into an (M, th*m, tw*m) grid;
5. epilogue: ``out = act(grid + bias + residual)`` cropped to OH x OW.

Columns p >= P of V are never written; GEMM columns are independent, so whatever they
hold only reaches the dropped columns of Mx.

Threads (``parallel.parallel_for``, per image): steps 1-2 split over input channels,
step 3 over the T*T positions, steps 4-5 over output channels; every task writes its
own rows of the scratch buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.gemm import (
    GemmPlan,
    MicroCache,
    align64,
    emit_gemm_core,
    scratch_f32,
    tile_shape,
)
from nnc.backends.llvm.loops import f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for
from nnc.ir.ops_conv_algos import winograd_matrices, winograd_tiles

Shape = tuple[int, ...]


@dataclass(frozen=True)
class WinogradGeometry:
    """Static sizes of one Winograd conv."""

    n: int
    c: int
    h: int
    w: int
    mo: int
    m: int
    pads: Shape
    nr: int

    @property
    def t(self) -> int:
        return self.m + 2

    @property
    def oh(self) -> int:
        return self.h + self.pads[0] + self.pads[2] - 2

    @property
    def ow(self) -> int:
        return self.w + self.pads[1] + self.pads[3] - 2

    @property
    def tiles(self) -> tuple[int, int]:
        return winograd_tiles(self.oh, self.ow, self.m)

    @property
    def p(self) -> int:
        th, tw = self.tiles
        return th * tw

    @property
    def pp(self) -> int:
        return -(-self.p // self.nr) * self.nr

    @property
    def xp_shape(self) -> tuple[int, int]:
        th, tw = self.tiles
        return th * self.m + 2, tw * self.m + 2

    @property
    def grid_shape(self) -> tuple[int, int]:
        th, tw = self.tiles
        return th * self.m, tw * self.m

    def scratch_floats(self) -> list[int]:
        """Floats of xp, V, Mx and the output grid."""
        hx, wx = self.xp_shape
        gh, gw = self.grid_shape
        tt = self.t * self.t
        return [self.c * hx * wx, tt * self.c * self.pp, tt * self.mo * self.pp, self.mo * gh * gw]


def lincomb(b: ir.IRBuilder, coeffs, values: list[ir.Value]) -> ir.Value:
    """``sum_i coeffs[i] * values[i]`` with constant coefficients: 0 skipped, ±1 no fmul."""
    acc = None
    for k, v in zip(coeffs, values, strict=True):
        k = float(k)
        if k == 0.0:
            continue
        if acc is None:
            acc = v if k == 1.0 else b.fmul(v, f32(k))
        elif k == 1.0:
            acc = b.fadd(acc, v)
        elif k == -1.0:
            acc = b.fsub(acc, v)
        else:
            acc = b.fadd(acc, b.fmul(v, f32(k)), flags=("contract",))
    return f32(0.0) if acc is None else acc


def sandwich(b: ir.IRBuilder, left: np.ndarray, tile: list[list[ir.Value]]) -> list[list]:
    """``left @ tile @ left^T`` with constant ``left`` (rows x T) on a T x T tile of values."""
    rows, t = left.shape
    tmp = [[lincomb(b, left[a], [tile[i][j] for i in range(t)]) for j in range(t)]
           for a in range(rows)]  # fmt: skip
    return [[lincomb(b, left[bb], tmp[a]) for bb in range(rows)] for a in range(rows)]


def _zero(b, ptr, count: int) -> None:
    if count > 0:
        with for_range(b, 0, count, name="z") as i:
            store_at(b, f32(0.0), ptr, i)


def _transform_input(b, g: WinogradGeometry, bt: np.ndarray, x, xp, v, lo, hi) -> None:
    """Channels ``[lo, hi)``: pad into ``xp`` (``xp[c, pt + i, pl + j] = x[c, i, j]``, 0
    elsewhere), then ``V[xi, c, p] = (B^T d B)[xi]`` for every tile p."""
    t, m = g.t, g.m
    hx, wx = g.xp_shape
    th, tw = g.tiles
    pt, pl = g.pads[0], g.pads[1]
    with for_range(b, lo, hi, name="ic") as ci:
        plane = gep(b, xp, b.mul(ci, i64(hx * wx)))
        _zero(b, plane, hx * wx)
        with for_range(b, 0, g.h, name="pi") as i:
            src = gep(b, x, b.add(b.mul(ci, i64(g.h * g.w)), b.mul(i, i64(g.w))))
            dst = gep(b, plane, b.add(b.mul(i, i64(wx)), i64(pt * wx + pl)))
            with for_range(b, 0, g.w, name="pj") as j:
                store_at(b, load_at(b, src, j), dst, j)
        with for_range(b, 0, th, name="ity") as ty:
            row0 = gep(b, plane, b.mul(ty, i64(m * wx)))
            vc = gep(b, v, b.add(b.mul(ci, i64(g.pp)), b.mul(ty, i64(tw))))
            with for_range(b, 0, tw, name="itx") as tx:
                src = gep(b, row0, b.mul(tx, i64(m)))
                d = [[load_at(b, src, i * wx + j) for j in range(t)] for i in range(t)]
                vt = sandwich(b, bt, d)
                for a in range(t):
                    for bb in range(t):
                        store_at(b, vt[a][bb], gep(b, vc, (a * t + bb) * g.c * g.pp), tx)


def _transform_output(b, module, g: WinogradGeometry, at, mx, grid, out, bias, res, act, lo, hi):
    """Output channels ``[lo, hi)``: ``A^T Mx A`` per tile into the grid, then
    ``out = act(grid + bias + residual)`` cropped to OH x OW."""
    t, m = g.t, g.m
    th, tw = g.tiles
    gh, gw = g.grid_shape
    with for_range(b, lo, hi, name="ok") as k:
        gk = gep(b, grid, b.mul(k, i64(gh * gw)))
        with for_range(b, 0, th, name="oty") as ty:
            src = gep(b, mx, b.add(b.mul(k, i64(g.pp)), b.mul(ty, i64(tw))))
            dst0 = gep(b, gk, b.mul(ty, i64(m * gw)))
            with for_range(b, 0, tw, name="otx") as tx:
                vals = [
                    [load_at(b, gep(b, src, (a * t + bb) * g.mo * g.pp), tx) for bb in range(t)]
                    for a in range(t)
                ]
                y = sandwich(b, at, vals)
                dst = gep(b, dst0, b.mul(tx, i64(m)))
                for i in range(m):
                    for j in range(m):
                        store_at(b, y[i][j], dst, i * gw + j)
        bv = load_at(b, bias, k) if bias is not None else None
        with for_range(b, 0, g.oh, name="eh") as oh:
            src = gep(b, gk, b.mul(oh, i64(gw)))
            off = b.mul(b.add(b.mul(k, i64(g.oh)), oh), i64(g.ow))
            dst = gep(b, out, off)
            rrow = gep(b, res, off) if res is not None else None
            with for_range(b, 0, g.ow, name="ew") as j:
                val = load_at(b, src, j)
                if bv is not None:
                    val = b.fadd(val, bv)
                if rrow is not None:
                    val = b.fadd(val, load_at(b, rrow, j))
                store_at(b, emit_activation(b, module, val, *act), dst, j)


def emit_winograd_conv(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    u_shape: Shape,
    tile: int,
    pads: Shape,
    has_bias: bool = False,
    has_residual: bool = False,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
) -> KernelFn:
    """``nn.winograd_conv``: args ``x (N,C,H,W), u (T*T,M,C), [bias], [residual], out``."""
    n, c, h, w = x_shape
    tt, mo, c2 = u_shape
    ts = tile_shape(module)
    g = WinogradGeometry(n, c, h, w, mo, tile, tuple(pads), ts.nr)
    if c2 != c or tt != g.t * g.t or g.oh < 1 or g.ow < 1:
        raise ValueError(f"winograd_conv: bad shapes x {x_shape}, u {u_shape}, tile {tile}")
    at, _, bt = winograd_matrices(tile)
    sizes = [align64(4 * f) for f in g.scratch_floats()]
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    x, u, out = args[0], args[1], args[n_args - 1]
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    offs = np.cumsum([0, *sizes])
    xp, v, mx, grid = (scratch_f32(b, args[-1], int(o)) for o in offs[:4])
    cache = MicroCache(module, name)
    plan = GemmPlan(mo, g.pp, c, c, 1, False)
    act = (activation, act_alpha, act_beta)
    in_img, out_img = c * h * w, mo * g.oh * g.ow
    with for_range(b, 0, n, name="img") as ni:
        x_img = gep(b, x, b.mul(ni, i64(in_img)))
        o_img = gep(b, out, b.mul(ni, i64(out_img)))
        r_img = gep(b, res, b.mul(ni, i64(out_img))) if res is not None else None

        def inputs(bb, lo, hi, a):
            _transform_input(bb, g, bt, a[0], a[1], a[2], lo, hi)

        def gemms(bb, lo, hi, a):
            with for_range(bb, lo, hi, name="xi") as xi:
                a_xi = gep(bb, a[0], bb.mul(xi, i64(mo * c)))
                b_xi = gep(bb, a[1], bb.mul(xi, i64(c * g.pp)))
                c_xi = gep(bb, a[2], bb.mul(xi, i64(mo * g.pp)))
                emit_gemm_core(bb, cache, plan, ts, a_xi, b_xi, c_xi, None, None)

        def outputs(bb, lo, hi, a):
            bias_a = a[3] if bias is not None else None
            res_a = a[3 + (bias is not None)] if res is not None else None
            _transform_output(bb, module, g, at, a[0], a[1], a[2], bias_a, res_a, act, lo, hi)

        tile_work = g.p * tt * 2 * g.t
        parallel_for(b, c, [x_img, xp, v], inputs, work=c * tile_work, name="wgi")
        parallel_for(b, tt, [u, v, mx], gemms, work=2 * tt * mo * c * g.pp, name="wgg")
        extra = [p for p in (bias, r_img) if p is not None]
        out_caps = [mx, grid, o_img, *extra]
        parallel_for(b, mo, out_caps, outputs, work=mo * tile_work, name="wgo")
    b.ret_void()
    return KernelFn(fn, int(offs[4]))
