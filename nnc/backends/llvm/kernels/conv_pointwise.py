"""Pointwise (1x1, stride 1, no padding, one group) conv as a GEMM over pixels, on the
``c16``-packed weights of ``pack.py``.

``out[m, p] = sum_c w[m, c] * x[c, p]`` with ``p`` the flattened pixel: the NCHW input
plane of channel ``c`` is row ``c`` of B, read in place (contiguous pixels), and the
output rows are written in place too, so, unlike the channel-vectorized direct kernel
(``conv_direct.py``), the register tile needs no transpose: it is ``mr`` output channels
(broadcast from the packed panel, where step ``c`` of a 16-channel block is 16
contiguous floats) by ``nrv`` vectors of pixels. For small reductions (``C`` of a
few dozen) the transpose is a large share of the direct kernel's work; see
``use_pointwise``.

Epilogue fused per tile row: ``+ bias`` (splat), ``+ residual`` (vector load), the
activation, one (masked) store per vector. The last pixel tile masks its loads and
stores. Loop nest: ``for (image, super tile)`` (on the thread pool) -> ``for`` channel
row block -> ``for`` pixel tile of the super tile -> micro-kernel (runtime loop over
``c``).

Tiles: AVX-512 8 x 3 vectors of 16 (24 accumulators), AVX2 4 x 3 of 8, NEON 8 x 3 of 4,
scalar targets 4 x 1.
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.gemm import TileShape, tile_shape
from nnc.backends.llvm.kernels.pack import CHANNEL_BLOCK
from nnc.backends.llvm.kernels.simd import (
    load_lanes,
    splat,
    store_lanes,
    vec_ptr,
    vec_type,
    vector_activation,
)
from nnc.backends.llvm.loops import for_range, gep, i64, load_at
from nnc.backends.llvm.parallel import parallel_for

#: Use this kernel for pointwise convs with at most this many input channels, or with
#: at most ``MAX_PLANE_K`` on planes of at least ``MIN_PLANE`` pixels (measured on Zen 4
#: against the direct kernel: a clear win up to K=144 on 56x56, even from K=96 on 14x14,
#: a loss on 7x7 planes whose pixels fill the 48-pixel tiles badly).
MAX_POINTWISE_K = 64
MIN_PLANE, MAX_PLANE_K = 784, 192
#: Pixel tiles per task (a "super tile": its rows of every output channel are written
#: one channel row block at a time, long contiguous runs), while keeping at least
#: ``MIN_TASKS`` tasks per image for the thread pool.
SUPER_TILES, MIN_TASKS = 16, 16


def point_tile(module: ir.Module) -> TileShape:
    """Register tile of the pointwise micro-kernel: ``mr`` output channels (divides 16) x
    ``nrv`` vectors of ``width`` pixels."""
    width = tile_shape(module).width
    if width >= 16:
        return TileShape(16, 8, 3)
    if width == 8:
        return TileShape(8, 4, 3)
    if width >= 4:
        return TileShape(width, 8, 3)
    return TileShape(1, 4, 1)


def use_pointwise(x_shape, w_shape, strides, pads, group) -> bool:
    """True for 1x1 / stride 1 / unpadded / ungrouped convs with a small reduction (or a
    moderate one on a large plane)."""
    _, c, h, w = x_shape
    _, _, kh, kw = w_shape
    if group != 1 or (kh, kw) != (1, 1) or tuple(strides) != (1, 1) or any(pads):
        return False
    return c <= MAX_POINTWISE_K or (h * w >= MIN_PLANE and c <= MAX_PLANE_K)


def _emit_micro(module, fname, t: TileShape, k: int, plane: int, cols: int, rows: int, epi):
    """``void f(x, w, out[, bias][, res])``: ``rows`` channels x ``cols`` pixels."""
    has_bias, has_res, act = epi
    n_args = 3 + has_bias + has_res
    fn, b, args = loops.new_function(module, fname, n_args)
    fn.linkage = "internal"
    x, w, out = args[:3]
    bias = args[3] if has_bias else None
    res = args[3 + has_bias] if has_res else None
    vec = vec_type(t.width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{t.width}f32", vec, [vec] * 3)
    nv = -(-cols // t.width)
    counts = [min(t.width, cols - v * t.width) for v in range(nv)]
    slots = [[b.alloca(vec) for _ in range(nv)] for _ in range(t.mr)]
    for row in slots:
        for slot in row:
            b.store(ir.Constant(vec, None), slot)
    with for_range(b, 0, k, name="c") as c:
        x_c = gep(b, x, b.mul(c, i64(plane)))
        w_c = gep(b, w, b.mul(c, i64(CHANNEL_BLOCK)))
        xv = []
        for v, cnt in enumerate(counts):
            ptr = gep(b, x_c, i64(v * t.width))
            if cnt == t.width:
                xv.append(b.load(vec_ptr(b, ptr, 0, vec), align=4))
            else:
                xv.append(load_lanes(b, module, vec, ptr, cnt))
        for r in range(rows):
            s = splat(b, load_at(b, w_c, i64(r)), vec)
            for v in range(nv):
                b.store(b.call(fma, [s, xv[v], b.load(slots[r][v])]), slots[r][v])
    for r in range(rows):
        bv = splat(b, load_at(b, bias, i64(r)), vec) if bias is not None else None
        for v, cnt in enumerate(counts):
            val = b.load(slots[r][v])
            if bv is not None:
                val = b.fadd(val, bv)
            off = i64(r * plane + v * t.width)
            if res is not None:
                val = b.fadd(val, load_lanes(b, module, vec, b.gep(res, [off]), cnt))
            store_lanes(b, module, vector_activation(b, module, val, *act), b.gep(out, [off]), cnt)
    b.ret_void()
    return fn


def emit_conv2d_pointwise(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w_shape,
    has_bias: bool,
    has_residual: bool,
    act: tuple[str, float, float],
) -> KernelFn:
    """Pointwise conv (see ``use_pointwise``) with ``c16``-packed weights; args ``x,
    w_packed, [bias], [residual], out``. Same semantics as ``conv2d.emit_conv2d``."""
    n, c, h, wd = x_shape
    m = w_shape[0]
    t = point_tile(module)
    plane = h * wd
    full, tail = divmod(plane, t.nr)
    ntiles = full + (tail > 0)
    n_args = 3 + has_bias + has_residual
    fn, b, all_args = loops.new_function(module, name, n_args)
    epi = (has_bias, has_residual, tuple(act))
    micros: dict[tuple[int, int], ir.Function] = {}

    def micro(cols: int, rows: int) -> ir.Function:
        key = (cols, rows)
        if key not in micros:
            fname = f"{name}.micro{len(micros)}"
            micros[key] = _emit_micro(module, fname, t, c, plane, cols, rows, epi)
        return micros[key]

    full_rb, tail_rows = divmod(m, t.mr)  # row blocks of mr channels (+ one partial)
    sup = max(1, min(SUPER_TILES, ntiles // MIN_TASKS))
    nsup = -(-ntiles // sup)

    def tiles(b, lo, hi, args) -> None:  # (image, super tile) pairs [lo, hi)
        x, w, out = args[0], args[1], args[n_args - 1]
        bias = args[2] if has_bias else None
        res = args[2 + has_bias] if has_residual else None
        with for_range(b, lo, hi, name="st") as idx:
            ni = b.udiv(idx, i64(nsup))
            t0 = b.mul(b.urem(idx, i64(nsup)), i64(sup))
            t1 = b.add(t0, i64(sup))
            t1 = b.select(b.icmp_unsigned("<", t1, i64(full)), t1, i64(full))
            x_n = gep(b, x, b.mul(ni, i64(c * plane)))
            o_n = b.mul(ni, i64(m * plane))

            def row_block(rb, rows: int) -> None:
                m0 = b.mul(rb, i64(t.mr))
                w_rb = b.add(b.mul(b.udiv(m0, i64(CHANNEL_BLOCK)), i64(c * CHANNEL_BLOCK)),
                             b.urem(m0, i64(CHANNEL_BLOCK)))  # fmt: skip
                o_rb = b.add(o_n, b.mul(m0, i64(plane)))

                def call(p0, cols: int) -> None:
                    ops = [gep(b, x_n, p0), gep(b, w, w_rb), gep(b, out, b.add(o_rb, p0))]
                    if bias is not None:
                        ops.append(gep(b, bias, m0))
                    if res is not None:
                        ops.append(gep(b, res, b.add(o_rb, p0)))
                    b.call(micro(cols, rows), ops)

                with for_range(b, t0, t1, name="pt") as ti:
                    call(b.mul(ti, i64(t.nr)), t.nr)
                if tail:  # the partial last tile belongs to the last super tile
                    last = b.icmp_unsigned(">=", b.add(t0, i64(sup)), i64(ntiles))
                    with b.if_then(last):
                        call(i64(full * t.nr), tail)

            if full_rb:
                with for_range(b, 0, full_rb, name="rb") as rb:
                    row_block(rb, t.mr)
            if tail_rows:
                row_block(i64(full_rb), tail_rows)

    work = 2 * n * m * c * plane
    parallel_for(b, n * nsup, list(all_args), tiles, work=work)
    b.ret_void()
    return KernelFn(fn)
