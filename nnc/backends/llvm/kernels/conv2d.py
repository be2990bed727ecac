"""2-D convolution (NCHW, grouped, depthwise) as an implicit GEMM on the SIMD micro-kernel.

Per image the input is copied once into scratch, zero padded and split into
``stride_h * stride_w`` phases: element ``(ih, iw)`` of the padded plane lands in phase
``(ih % sh, iw % sw)`` at ``(ih // sh, iw // sw)`` of an ``hq x wq`` grid. Output pixel
``(oh, ow)`` of tap ``(kh, kw)`` then reads phase grid position ``(oh + kh*dh // sh,
ow + kw*dw // sw)``, so with the flattened index ``p = oh*wq + ow`` every tap is a
contiguous run of ``p``: the im2col matrix row of tap ``(c, kh, kw)`` is a plain slice
of the phase buffer and the micro-kernel reads it in place. Columns ``ow >= OW`` are
computed into a scratch output grid and dropped by the epilogue pass, which adds bias
and residual, applies the activation and writes the dense NCHW output.

Depthwise convs (one input channel per group, multiplier below the micro tile height)
go to ``depthwise.py`` (input read in place, rows vectorized with masked borders), and
convs whose weights were packed at compile time (``w_layout="c16"``, see ``pack.py``) to
the direct channel-vectorized kernel of ``conv_direct.py`` (pointwise convs with few input
channels: the pixel-vectorized GEMM of ``conv_pointwise.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.conv_direct import emit_conv2d_direct
from nnc.backends.llvm.kernels.conv_pointwise import emit_conv2d_pointwise, use_pointwise
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.depthwise import emit_depthwise
from nnc.backends.llvm.kernels.gemm import (
    MicroCache,
    MicroSpec,
    TileShape,
    align64,
    scratch_f32,
    tile_shape,
)
from nnc.backends.llvm.loops import f32, for_range, gep, i64, load_at, store_at

Shape = tuple[int, ...]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ConvGeometry(ConvShape):
    """Conv sizes plus the phase grid and the micro-kernel tiling of this emitter."""

    tile: TileShape

    @property
    def hq(self) -> int:
        """Rows of one phase grid."""
        return _ceil_div(self.h + self.pt + self.pb, self.sh)

    @property
    def wq(self) -> int:
        """Columns of one phase grid (also the row pitch of the output grid)."""
        return _ceil_div(self.w + self.pl + self.pr, self.sw)

    @property
    def chan(self) -> int:
        """Floats of one input channel in the phase buffer (all phases)."""
        return self.sh * self.sw * self.hq * self.wq

    def tap_offset(self, kh: int, kw: int) -> int:
        """Offset of tap ``(kh, kw)`` within a channel of the phase buffer."""
        ph, qh = divmod(kh * self.dh, self.sh)[::-1]
        pw, qw = divmod(kw * self.dw, self.sw)[::-1]
        return (ph * self.sw + pw) * self.hq * self.wq + qh * self.wq + qw

    @property
    def mr(self) -> int:
        """Rows per micro tile (at most the channels of a group)."""
        return min(self.tile.mr, self.mg)

    @property
    def nrv(self) -> int:
        """Vectors per micro-tile row: wider when a group has few output channels."""
        t = self.tile
        return min(4, max(t.nrv, t.mr * t.nrv // self.mr))

    @property
    def nr(self) -> int:
        """Output grid columns per micro tile."""
        return self.nrv * self.tile.width

    @property
    def ldg(self) -> int:
        """Row pitch of the output grid: ``oh * wq`` rounded up to whole tiles."""
        return _ceil_div(self.oh * self.wq, self.nr) * self.nr

    @property
    def xs_floats(self) -> int:
        """Phase buffer floats, including the slack read by the last (partial) tiles."""
        taps = [self.tap_offset(i, j) for i in range(self.kh) for j in range(self.kw)]
        reach = (self.c - 1) * self.chan + max(taps) + self.ldg
        return _ceil_div(max(reach, self.c * self.chan), 16) * 16

    def micro_spec(self, rows: int) -> MicroSpec:
        """Micro-kernel over channels (runtime loop) and taps (unrolled)."""
        taps = tuple(
            (i * self.kw + j, self.tap_offset(i, j)) for i in range(self.kh) for j in range(self.kw)
        )
        k = self.cg * self.kh * self.kw
        return MicroSpec(
            rows, self.nrv, self.tile.width, k, self.cg, self.kh * self.kw, self.chan, taps,
            self.ldg,
        )  # fmt: skip


def _zero(b: ir.IRBuilder, ptr: ir.Value, start: int, stop: int) -> None:
    """``ptr[start:stop] = 0`` (no-op when empty)."""
    if stop > start:
        with for_range(b, start, stop, name="z") as i:
            store_at(b, f32(0.0), ptr, i)


def _valid_range(count: int, phase: int, stride: int, pad: int, size: int) -> tuple[int, int]:
    """Grid indices ``i`` in ``[0, count)`` whose source ``i*stride + phase - pad`` is in
    ``[0, size)``, as a half-open range."""
    lo = min(max(0, _ceil_div(pad - phase, stride)), count)
    hi = min(max(lo, _ceil_div(size + pad - phase, stride)), count)
    return lo, hi


def _fill_phases(b: ir.IRBuilder, g: ConvGeometry, x: ir.Value, xs: ir.Value) -> None:
    """Write the zero-padded, phase-split copy of one image ``x`` into ``xs``."""
    plane = g.hq * g.wq
    with for_range(b, 0, g.c, name="fc") as ci:
        src_c = gep(b, x, b.mul(ci, i64(g.h * g.w)))
        dst_c = gep(b, xs, b.mul(ci, i64(g.chan)))
        for ph in range(g.sh):
            i_lo, i_hi = _valid_range(g.hq, ph, g.sh, g.pt, g.h)
            for pw in range(g.sw):
                j_lo, j_hi = _valid_range(g.wq, pw, g.sw, g.pl, g.w)
                dst = gep(b, dst_c, (ph * g.sw + pw) * plane)
                _zero(b, dst, 0, i_lo * g.wq)
                _zero(b, dst, i_hi * g.wq, plane)
                with for_range(b, i_lo, i_hi, name="fi") as i:
                    row = gep(b, dst, b.mul(i, i64(g.wq)))
                    ih = b.add(b.mul(i, i64(g.sh)), i64(ph - g.pt))
                    src = gep(b, src_c, b.add(b.mul(ih, i64(g.w)), i64(pw - g.pl)))
                    _zero(b, row, 0, j_lo)
                    with for_range(b, j_lo, j_hi, name="fj") as j:
                        store_at(b, load_at(b, src, b.mul(j, i64(g.sw))), row, j)
                    _zero(b, row, j_hi, g.wq)
    _zero(b, xs, g.c * g.chan, g.xs_floats)


def _compute_grid(b, cache: MicroCache, g: ConvGeometry, w, xs, grid) -> None:
    """``grid[m, p] = sum_{c, kh, kw} w[m, c, kh, kw] * tap(c, kh, kw)[p]`` for all groups."""
    k = g.cg * g.kh * g.kw
    mfull, mtail = divmod(g.mg, g.mr)
    with for_range(b, 0, g.group, name="grp") as gi:
        xs_g = gep(b, xs, b.mul(gi, i64(g.cg * g.chan)))
        m_g = b.mul(gi, i64(g.mg))
        with for_range(b, 0, g.ldg // g.nr, name="nb") as nb:
            p0 = b.mul(nb, i64(g.nr))
            bsrc = gep(b, xs_g, p0)
            for rows, start, count in ((g.mr, 0, mfull), (mtail, mfull * g.mr, int(mtail > 0))):
                if count == 0:
                    continue
                fn = cache.get(g.micro_spec(rows))
                with for_range(b, 0, count, name="mb") as mb:
                    m0 = b.add(m_g, b.add(b.mul(mb, i64(g.mr)), i64(start)))
                    a_blk = gep(b, w, b.mul(m0, i64(k)))
                    c_blk = gep(b, grid, b.add(b.mul(m0, i64(g.ldg)), p0))
                    b.call(fn, [a_blk, bsrc, c_blk])


def _epilogue(b, module, g: ConvGeometry, grid, out, bias, res, act: tuple) -> None:
    """``out[m, oh, ow] = act(grid[m, oh*wq + ow] + bias[m] + res[m, oh, ow])``."""
    with for_range(b, 0, g.m, name="em") as mi:
        bv = load_at(b, bias, mi) if bias is not None else None
        with for_range(b, 0, g.oh, name="eh") as oh:
            src = gep(b, grid, b.add(b.mul(mi, i64(g.ldg)), b.mul(oh, i64(g.wq))))
            dst_off = b.mul(b.add(b.mul(mi, i64(g.oh)), oh), i64(g.ow))
            dst = gep(b, out, dst_off)
            rrow = gep(b, res, dst_off) if res is not None else None
            with for_range(b, 0, g.ow, name="ew") as j:
                v = load_at(b, src, j)
                if bv is not None:
                    v = b.fadd(v, bv)
                if rrow is not None:
                    v = b.fadd(v, load_at(b, rrow, j))
                store_at(b, emit_activation(b, module, v, *act), dst, j)


def conv_geometry(module, x_shape, w_shape, strides, pads, dilations, group) -> ConvGeometry:
    """Validate conv attributes and build the geometry for ``module``'s target."""
    return ConvGeometry.checked(
        x_shape, w_shape, strides, pads, dilations, group, tile_shape(module)
    )


def emit_conv2d(
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
    w_layout: str = "oihw",
) -> KernelFn:
    """ONNX Conv (NCHW) with fused epilogue ``y = act(conv(x, w) + bias + residual)``.

    Args ``x (N,C,H,W), w (M,C/group,KH,KW), [bias (M,)], [residual (N,M,OH,OW)], out``;
    ``pads = (top, left, bottom, right)``. Depthwise convs (one input channel per group,
    small multiplier) use ``depthwise.py`` (no scratch); everything else is an
    implicit GEMM whose scratch holds the phase-split input of one image and the
    output grid. ``w_layout="c16"`` (weights packed by ``pack.pack_conv_weights``) selects
    the direct channel-vectorized kernel of ``conv_direct.py`` instead.
    """
    if w_layout == "c16":
        act3 = (activation, act_alpha, act_beta)
        if use_pointwise(x_shape, w_shape, strides, pads, group):
            return emit_conv2d_pointwise(
                module, name, x_shape=x_shape, w_shape=w_shape, has_bias=has_bias,
                has_residual=has_residual, act=act3,
            )  # fmt: skip
        return emit_conv2d_direct(
            module, name, x_shape=x_shape, w_shape=w_shape, strides=strides, pads=pads,
            dilations=dilations, group=group, has_bias=has_bias, has_residual=has_residual,
            act=act3,
        )  # fmt: skip
    if w_layout != "oihw":
        raise ValueError(f"conv: unknown weight layout {w_layout!r}")
    g = conv_geometry(module, x_shape, w_shape, strides, pads, dilations, group)
    n_args = 3 + has_bias + has_residual
    act = (activation, act_alpha, act_beta)
    if g.cg == 1 and g.mg < g.tile.mr:  # depthwise: vectorized rows (depthwise.py)
        return emit_depthwise(module, name, g, g.tile.width, has_bias, has_residual, act)
    xs_bytes = align64(4 * g.xs_floats)
    scratch_bytes = xs_bytes + align64(4 * g.m * g.ldg)
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    x, w = args[0], args[1]
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    out = args[n_args - 1]
    xs = scratch_f32(b, args[-1], 0)
    grid = scratch_f32(b, args[-1], xs_bytes)
    cache = MicroCache(module, name)
    in_img, out_img = g.c * g.h * g.w, g.m * g.oh * g.ow
    with for_range(b, 0, g.n, name="img") as ni:
        _fill_phases(b, g, gep(b, x, b.mul(ni, i64(in_img))), xs)
        _compute_grid(b, cache, g, w, xs, grid)
        o_img = b.mul(ni, i64(out_img))
        r_img = gep(b, res, o_img) if res is not None else None
        _epilogue(b, module, g, grid, gep(b, out, o_img), bias, r_img, act)
    b.ret_void()
    return KernelFn(fn, scratch_bytes)
