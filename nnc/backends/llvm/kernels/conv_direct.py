"""Direct NCHW convolution vectorized over output channels, on packed ``c16`` weights.

Register tile: ``P`` output pixels x ``V`` vectors of output channels (``V * width``
channels, whole 16-channel blocks of the packed weights, see ``pack.py``). Per reduction
step ``(c, kh, kw)`` the micro-kernel loads ``V`` weight vectors (contiguous in the
packed panel) and broadcasts the ``P`` input pixels read in place from the NCHW input,
then issues ``P * V`` fused multiply-adds. Tiles never straddle padding or wasted
columns: a tile is either a segment of one output row or ``R`` whole output rows, so
its pixels are contiguous in the output plane. Taps that fall into the padding are
skipped statically: border rows/segments get their own micro-kernel variant (the input
is never copied), interior rows run in a runtime loop. Single-row tiles run the kernel
rows ``kh`` as a runtime loop (only the ``kw`` taps unrolled: small code, no spills for
7x7 stems); multi-row tiles (narrow images) unroll all taps.

Epilogue, fused on the register tile: per channel vector, ``W x W`` in-register
transposes turn pixel-major accumulators into channel rows; then ``+ bias`` (splat),
``+ residual`` (vector load), the activation (vector ops), and one (masked) vector store
per channel row straight into the NCHW output. No scratch memory.

Tiles per ISA (``width`` from ``gemm.tile_shape``): AVX-512 14 pixels x 2 vectors of 16
(28 accumulators of 32 registers); AVX2 6 x 2 of 8 (12 of 16); NEON 6 x 4 of 4 (24 of
32); scalar targets 1 x 16. Loop nest: ``for (image, group, channel tile[, row band])``
(outermost, independent output blocks: the loop to parallelise; threaded builds cut each
channel tile into row bands when there are fewer than ``MIN_TASKS`` tiles, e.g. a 3->32
stem) -> row groups -> row segments -> micro-kernel (``for c`` runtime loop over input
channels, taps unrolled). Bands never change which micro-kernel computes a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from nnc.backends.llvm import loops, parallel
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.gemm import tile_shape
from nnc.backends.llvm.kernels.pack import CHANNEL_BLOCK, packed_blocks
from nnc.backends.llvm.kernels.pool import Axis
from nnc.backends.llvm.kernels.simd import (
    load_lanes,
    splat,
    store_lanes,
    transpose,
    vec_ptr,
    vec_type,
    vector_activation,
)
from nnc.backends.llvm.loops import for_range, gep, i64, load_at
from nnc.backends.llvm.parallel import module_threads, parallel_for

#: Fewest parallel tasks a direct conv aims for (``_Emitter.row_bands``).
MIN_TASKS = 16
#: Reductions ``C/group * KH * KW`` up to this (stems: 3 x 3x3 = 27) use one 16-channel
#: block per tile: the output is written 16 planes at a time instead of 32 (SqueezeNet's
#: 3->64 3x3/2 stem on Zen 4: ~455 -> ~430 us warm, ~515 -> ~450 us with cold caches).
NARROW_K = 32

Shape = tuple[int, ...]


@dataclass(frozen=True)
class DirectTile:
    """Register tile: up to ``pixels`` broadcast pixels x ``blocks`` 16-channel blocks of
    ``width``-float vectors."""

    width: int
    pixels: int
    blocks: int
    constraint: str = ""

    @property
    def channels(self) -> int:
        """Output channels per tile."""
        return self.blocks * CHANNEL_BLOCK


def direct_tile(module: ir.Module) -> DirectTile:
    """The tile for ``module``'s target (see the module docstring)."""
    width = tile_shape(module).width
    if width >= 16:  # x86 AVX-512 ("v": any vector register, for ``_pin``)
        return DirectTile(16, 14, 2, "v")
    if width == 8:  # x86 AVX2
        return DirectTile(8, 6, 1, "v")
    if width >= 4:
        return DirectTile(width, 6, 1)
    return DirectTile(1, 1, 1)


@dataclass(frozen=True)
class MicroConv:
    """One micro-kernel variant ``void f(x, w, out[, bias][, res])``.

    ``taps[j]`` lists ``(tap index, input offset)`` of pixel ``j`` (offsets relative to
    ``x``, padding taps left out); channel ``c`` of the input is at ``x + c*chan`` and its
    weights at ``w + c*ntaps*16`` (block ``k`` at ``+ k*panel``). ``kh_loop = (lo, hi,
    x_step, w_step)`` wraps the taps in a runtime loop over kernel rows ``kh`` in
    ``[lo, hi)`` adding ``kh*x_step`` / ``kh*w_step`` (then ``taps`` hold one row's
    taps). Output channel row ``ch`` of the tile is at ``out + ch*pitch`` (pixels
    contiguous); ``bias`` points at the tile's first channel, ``res`` like ``out``.
    Channels ``>= valid`` are not stored.

    Blocked activations (NCHWc, ``nnc/ir/ops_blocked.py``): ``x_block = 16`` scales the
    input offsets (taps, ``x_step``) by 16 floats per pixel, and channel ``c`` is at
    ``x + (c // 16)*chan + c % 16``; ``out_block = 16`` stores the accumulators as they
    are (one vector = ``width`` channels of one pixel): block ``k`` of pixel ``j`` at
    ``out + k*pitch + j*16``, the channels ``>= valid`` of the tile's last block as zeros.
    """

    width: int
    blocks: int
    taps: tuple[tuple[tuple[int, int], ...], ...]
    cg: int
    ntaps: int
    chan: int
    panel: int
    pitch: int
    valid: int
    has_bias: bool
    has_res: bool
    act: tuple[str, float, float]
    reg_constraint: str = ""
    kh_loop: tuple[int, int, int, int] = (0, 1, 0, 0)
    x_block: int = 1
    out_block: int = 0


def _emit_micro(module: ir.Module, fname: str, s: MicroConv) -> ir.Function:
    n_args = 3 + s.has_bias + s.has_res
    fn, b, args = loops.new_function(module, fname, n_args)
    fn.linkage = "internal"
    # Not inlined and ``x`` may alias: the per-tap memory barrier below then really pins
    # each tap's loads (see ``_barrier``).
    fn.attributes.add("noinline")
    args[0].attributes.discard("noalias")
    x, w, out = args[:3]
    bias = args[3] if s.has_bias else None
    res = args[3 + s.has_bias] if s.has_res else None
    vec = vec_type(s.width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{s.width}f32", vec, [vec] * 3)
    nvec = s.blocks * CHANNEL_BLOCK // s.width
    npix = len(s.taps)
    slots = [[b.alloca(vec) for _ in range(nvec)] for _ in range(npix)]
    for row in slots:
        for slot in row:
            b.store(ir.Constant(vec, None), slot)
    by_tap: dict[int, list[tuple[int, int]]] = {}
    for j, taps in enumerate(s.taps):
        for t, off in taps:
            by_tap.setdefault(t, []).append((j, off))
    # An opaque trip count: LLVM must not fully unroll short channel loops (a 7x7 stem
    # with 3 channels would become one 147-step body the register allocator spills).
    # (An i32 fits an "r" register on every target, 32-bit ARM included.)
    trip = b.zext(_launder(b, ir.Constant(loops.I32, s.cg)), loops.I64)
    with for_range(b, 0, trip, name="c") as c:
        if s.x_block == 1:
            x_ch = b.gep(x, [b.mul(c, i64(s.chan))])
        else:  # blocked input: channel block c // 16, lane c % 16
            cb = b.lshr(c, i64(CHANNEL_BLOCK.bit_length() - 1))
            lane = b.and_(c, i64(CHANNEL_BLOCK - 1))
            x_ch = b.gep(x, [b.add(b.mul(cb, i64(s.chan)), lane)])
        w_ch = gep(b, w, b.mul(c, i64(s.ntaps * CHANNEL_BLOCK)))
        lo, hi, x_step, w_step = s.kh_loop
        kh_ctx = for_range(b, lo, hi, name="kh")
        khv = kh_ctx.__enter__()
        x_c = b.gep(x_ch, [b.mul(khv, i64(x_step * s.x_block))])
        w_c = gep(b, w_ch, b.mul(khv, i64(w_step)))
        accs = [[b.load(slot) for slot in row] for row in slots]
        for t in sorted(by_tap):
            _barrier(b)
            wv = []
            for v in range(nvec):
                blk, lane = divmod(v * s.width, CHANNEL_BLOCK)
                idx = blk * s.panel + t * CHANNEL_BLOCK + lane
                wv.append(b.load(vec_ptr(b, w_c, idx, vec), align=4))
            for j, off in by_tap[t]:
                sv = splat(b, b.load(b.gep(x_c, [i64(off * s.x_block)])), vec)
                accs[j] = [b.call(fma, [sv, wv[v], accs[j][v]]) for v in range(nvec)]
            accs = _pin(b, accs, s.reg_constraint)
        for row, vals in zip(slots, accs, strict=True):
            for slot, val in zip(row, vals, strict=True):
                b.store(val, slot)
        kh_ctx.__exit__(None, None, None)
    accs = [[b.load(slot) for slot in row] for row in slots]
    if s.out_block:
        _epilogue_blocked(b, module, s, accs, out, bias, res)
    else:
        _epilogue(b, module, s, accs, out, bias, res)
    b.ret_void()
    return fn


def _barrier(b: ir.IRBuilder) -> None:
    """An empty asm statement that may write memory (``x`` may alias it).

    Loads of one tap can neither merge with nor move across another tap's: taps of a conv
    read overlapping pixels, and merged or hoisted broadcasts stay live across taps and
    push the accumulators out of registers (spills)."""
    asm = ir.InlineAsm(ir.FunctionType(loops.VOID, []), "", "~{memory}", side_effect=True)
    b.call(asm, [])


#: Pin accumulators (``_pin``) only for unrolled tap lists longer than this (multi-row
#: tiles of big kernels): it keeps e.g. an unrolled 7x7 in registers (95 vs 35 GFLOP/s
#: on Zen 4) but slows short lists. Single-row tiles loop over ``kh`` instead.
_PIN_TAPS = 9


def _pin(b: ir.IRBuilder, accs: list[list[ir.Value]], constraint: str) -> list[list[ir.Value]]:
    """Route the accumulators through an empty asm statement (tied vector registers).

    Every FMA of a tap then completes before the next tap's loads; otherwise LLVM's
    machine scheduler may defer FMAs of long tap lists (a 7x7 stem) and keep their
    broadcasts live, spilling. No-op when ``constraint`` is empty (targets without one)."""
    if not constraint:
        return accs
    flat = [v for row in accs for v in row]
    n = len(flat)
    cons = ",".join([f"={constraint}"] * n + [str(i) for i in range(n)])
    fty = ir.FunctionType(ir.LiteralStructType([v.type for v in flat]), [v.type for v in flat])
    res = b.call(ir.InlineAsm(fty, "", cons, side_effect=True), flat)
    out = [b.extract_value(res, i) for i in range(n)]
    width = len(accs[0])
    return [out[i : i + width] for i in range(0, n, width)]


def _launder(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """``value`` through an empty asm statement: a value LLVM cannot constant-fold."""
    fty = ir.FunctionType(value.type, [value.type])
    return b.call(ir.InlineAsm(fty, "", "=r,0", side_effect=True), [value])


def _epilogue(b, module, s: MicroConv, accs, out, bias, res) -> None:
    """Transpose the tile to channel rows, add bias/residual, activate, store."""
    vec = vec_type(s.width)
    npix = len(accs)
    undef = ir.Constant(vec, ir.Undefined)
    for v in range(len(accs[0])):
        for q0 in range(0, npix, s.width):
            count = min(s.width, npix - q0)
            rows = [accs[j][v] for j in range(q0, q0 + count)] + [undef] * (s.width - count)
            for lane, val in enumerate(transpose(b, rows)):
                ch = v * s.width + lane
                if ch >= s.valid:
                    break
                if bias is not None:
                    val = b.fadd(val, splat(b, load_at(b, bias, ch), vec))
                off = i64(ch * s.pitch + q0)
                if res is not None:
                    val = b.fadd(val, load_lanes(b, module, vec, b.gep(res, [off]), count))
                val = vector_activation(b, module, val, *s.act)
                store_lanes(b, module, val, b.gep(out, [off]), count)


def _epilogue_blocked(b, module, s: MicroConv, accs, out, bias, res) -> None:
    """Blocked output: add bias/residual, activate, store each accumulator in place."""
    vec = vec_type(s.width)
    zero = ir.Constant(vec, None)
    for v in range(len(accs[0])):
        ch0 = v * s.width
        blk, lane0 = divmod(ch0, CHANNEL_BLOCK)
        live = max(0, min(s.width, s.valid - ch0))
        bv = None
        if bias is not None and live:
            bv = load_lanes(b, module, vec, b.gep(bias, [i64(ch0)]), live)
        keep = ir.Constant(
            ir.VectorType(ir.IntType(1), s.width), [i < live for i in range(s.width)]
        )
        for j, row in enumerate(accs):
            off = i64(blk * s.pitch + j * CHANNEL_BLOCK + lane0)
            val = row[v]
            if bv is not None:
                val = b.fadd(val, bv)
            if res is not None:
                val = b.fadd(val, b.load(vec_ptr(b, res, off, vec), align=4))
            val = vector_activation(b, module, val, *s.act)
            if live < s.width:  # the zero tail of the last block
                val = b.select(keep, val, zero)
            b.store(val, vec_ptr(b, out, off, vec), align=4)


@dataclass(frozen=True)
class _Conv(ConvShape):
    """Conv sizes (NCHW) plus this emitter's register tile and activation layouts
    (``xb``: input pixel stride, 1 = NCHW or 16 = blocked; ``ob``: 0 = NCHW output or 16 =
    blocked output)."""

    tile: DirectTile
    xb: int = 1
    ob: int = 0

    @property
    def x_image(self) -> int:
        """Floats of one input image."""
        if self.xb == 1:
            return self.c * self.h * self.w
        return -(-self.c // CHANNEL_BLOCK) * CHANNEL_BLOCK * self.h * self.w

    @property
    def m_rows(self) -> int:
        """Output channel rows of one image (whole blocks when blocked)."""
        return self.m if not self.ob else -(-self.m // CHANNEL_BLOCK) * CHANNEL_BLOCK

    @property
    def axes(self) -> tuple[Axis, Axis]:
        return (
            Axis(self.h, self.kh, self.sh, self.pt, self.pb, self.dh, self.oh),
            Axis(self.w, self.kw, self.sw, self.pl, self.pr, self.dw, self.ow),
        )

    def segments(self) -> tuple[int, list[tuple[int, int]]]:
        """Rows per tile and the column segments ``(ow0, count)`` of a row group."""
        p = self.tile.pixels
        if self.ow <= p:
            return max(1, p // self.ow), [(0, self.ow)]
        n = -(-self.ow // p)
        base, extra = divmod(self.ow, n)
        segs, ow0 = [], 0
        for i in range(n):
            cnt = base + (i < extra)
            segs.append((ow0, cnt))
            ow0 += cnt
        return 1, segs

    def row_taps(self, ow0: int, cols: int) -> tuple:
        """Like ``pixel_taps`` for one kernel row (``kh = 0``; tap index = ``kw``)."""
        wax = self.axes[1]
        return tuple(
            tuple((j, (ow - ow0) * self.sw + j * self.dw) for j in wax.taps(ow))
            for ow in range(ow0, ow0 + cols)
        )

    def pixel_taps(self, rows, ow0: int, cols: int) -> tuple:
        """Per pixel of a tile, the in-bounds ``(tap, offset)`` pairs, offsets relative to
        input column ``ow0*sw - pl`` of the tile's first row; ``rows`` lists each tile row's
        output row index, or None for rows known to be vertically interior."""
        hax, wax = self.axes
        out = []
        for r, oh in enumerate(rows):
            khs = range(self.kh) if oh is None else hax.taps(oh)
            for ow in range(ow0, ow0 + cols):
                base = r * self.sh * self.w + (ow - ow0) * self.sw
                out.append(tuple(
                    (i * self.kw + j, base + i * self.dh * self.w + j * self.dw)
                    for i in khs for j in wax.taps(ow)
                ))  # fmt: skip
        return tuple(out)


class _Emitter:
    def __init__(self, module: ir.Module, name: str, g: _Conv, has_bias, has_res, act):
        self.module, self.name, self.g = module, name, g
        self.has_bias, self.has_res, self.act = has_bias, has_res, act
        self.fns: dict[MicroConv, ir.Function] = {}

    def micro(self, taps, blocks: int, valid: int, kh_loop=(0, 1, 0, 0)) -> ir.Function:
        g = self.g
        spec = MicroConv(
            g.tile.width, blocks, taps, g.cg, g.kh * g.kw, g.h * g.w * g.xb,
            g.cg * g.kh * g.kw * CHANNEL_BLOCK, g.oh * g.ow * max(g.ob, 1), valid,
            self.has_bias, self.has_res, self.act,
            g.tile.constraint if len(taps[0]) > _PIN_TAPS else "", kh_loop, g.xb, g.ob,
        )  # fmt: skip
        if spec not in self.fns:
            self.fns[spec] = _emit_micro(self.module, f"{self.name}.micro{len(self.fns)}", spec)
        return self.fns[spec]

    def tile_rows(self, b, ptrs, blocks: int, valid: int, band=None) -> None:
        """All pixel tiles of one channel tile; ``ptrs = (x, w, out, bias, res)`` at the
        tile's group/channel origin. ``band = (lo, hi)`` (i64 values) restricts them to
        the row groups ``[lo, hi)`` (see ``row_bands``)."""
        g = self.g
        x, w, out, bias, res = ptrs
        rpt, segs = g.segments()
        lo, hi = g.axes[0].interior()
        starts = list(range(0, g.oh, rpt))

        def interior(oh0: int) -> bool:
            return oh0 + rpt <= g.oh and lo <= oh0 and oh0 + rpt <= hi

        def call_group(oh0, rows) -> None:
            pix = b.sub(b.mul(oh0, i64(g.sh * g.w)), i64(g.pt * g.w + g.pl))
            xrow = b.gep(x, [pix if g.xb == 1 else b.mul(pix, i64(g.xb))])
            orow = b.mul(oh0, i64(g.ow))
            for ow0, cols in segs:
                if rpt == 1:  # one output row: runtime loop over kernel rows kh
                    khs = range(g.kh) if rows[0] is None else g.axes[0].taps(rows[0])
                    lo_hi = (khs[0], khs[-1] + 1) if len(khs) else (0, 0)
                    kh_loop = (*lo_hi, g.dh * g.w, g.kw * CHANNEL_BLOCK)
                    fn = self.micro(g.row_taps(ow0, cols), blocks, valid, kh_loop)
                else:
                    fn = self.micro(g.pixel_taps(rows, ow0, cols), blocks, valid)
                o_off = b.mul(b.add(orow, i64(ow0)), i64(max(g.ob, 1)))
                args = [b.gep(xrow, [i64(ow0 * g.sw * g.xb)]), w, gep(b, out, o_off)]
                if bias is not None:
                    args.append(bias)
                if res is not None:
                    args.append(gep(b, res, o_off))
                b.call(fn, args)

        def smax(a, c):
            return b.select(b.icmp_signed(">", a, c), a, c)

        def smin(a, c):
            return b.select(b.icmp_signed("<", a, c), a, c)

        i = 0
        while i < len(starts):
            oh0 = starts[i]
            if not interior(oh0):
                rows = list(range(oh0, min(oh0 + rpt, g.oh)))
                if band is None:
                    call_group(i64(oh0), rows)
                else:
                    inside = b.and_(
                        b.icmp_signed("<=", band[0], i64(i)), b.icmp_signed(">", band[1], i64(i))
                    )
                    with b.if_then(inside):
                        call_group(i64(oh0), rows)
                i += 1
                continue
            j = i
            while j < len(starts) and interior(starts[j]):
                j += 1
            first, last = (i64(i), i64(j)) if band is None else (
                smax(band[0], i64(i)), smin(band[1], i64(j))
            )  # fmt: skip
            with for_range(b, first, last, name="rg") as gi:
                call_group(b.mul(gi, i64(rpt)), [None] * rpt)
            i = j

    def row_bands(self, tiles: int) -> int:
        """Row bands per channel tile: enough ``(tile, band)`` tasks (``MIN_TASKS``) for
        the thread pool to balance convs with few output channels (a 3->32 stem is one
        channel tile), at most one band per row group."""
        groups = -(-self.g.oh // self.g.segments()[0])
        return max(1, min(groups, -(-MIN_TASKS // max(tiles, 1))))

    def channel_tiles(self, b, args, count: int, first: int, blocks: int, valid: int) -> None:
        """``for (image, group, tile)`` over ``count`` channel tiles per group starting at
        tile ``first`` (the outermost loop: run on the thread pool, ``parallel.py``)."""
        g = self.g
        total = g.n * g.group * count
        work = 2 * total * valid * g.oh * g.ow * g.cg * g.kh * g.kw
        serial = module_threads(self.module) == 1 or work < parallel.MIN_PARALLEL_WORK
        bands = 1 if serial else self.row_bands(total)

        def tiles(b, lo, hi, a) -> None:  # the tasks [lo, hi) (parallel_for body)
            x, w, out = a[0], a[1], a[-1]
            bias = a[2] if self.has_bias else None
            res = a[2 + self.has_bias] if self.has_res else None
            ptrs = (x, w, out, bias, res)
            self._tile_range(b, lo, hi, ptrs, count, first, blocks, valid, bands)

        parallel_for(b, total * bands, list(args), tiles, work=work)

    def _tile_range(self, b, lo, hi, ptrs, count, first, blocks, valid, bands) -> None:
        """Tasks ``[lo, hi)`` of ``channel_tiles``: (channel tile, row band) pairs."""
        g = self.g
        x, w, out, bias, res = ptrs
        plane_out = g.oh * g.ow
        panel = g.cg * g.kh * g.kw * CHANNEL_BLOCK
        nb = packed_blocks(g.m, g.group)
        groups = -(-g.oh // g.segments()[0])
        with for_range(b, lo, hi, name="ct") as task:
            idx = b.udiv(task, i64(bands)) if bands > 1 else task
            band = None
            if bands > 1:
                bi = b.urem(task, i64(bands))
                band = tuple(
                    b.udiv(b.mul(v, i64(groups)), i64(bands)) for v in (bi, b.add(bi, i64(1)))
                )
            mt = b.add(b.urem(idx, i64(count)), i64(first))
            ng = b.udiv(idx, i64(count))
            gi = b.urem(ng, i64(g.group))
            ni = b.udiv(ng, i64(g.group))
            m0 = b.add(b.mul(gi, i64(g.mg)), b.mul(mt, i64(g.tile.channels)))
            plane = g.h * g.w
            x_t = gep(b, x, b.add(b.mul(ni, i64(g.x_image)), b.mul(gi, i64(g.cg * plane))))
            blk = b.add(b.mul(gi, i64(nb)), b.mul(mt, i64(g.tile.blocks)))
            w_t = gep(b, w, b.mul(blk, i64(panel)))
            o_off = b.mul(b.add(b.mul(ni, i64(g.m_rows)), m0), i64(plane_out))
            ptrs = (
                x_t, w_t, gep(b, out, o_off),
                gep(b, bias, m0) if bias is not None else None,
                gep(b, res, o_off) if res is not None else None,
            )  # fmt: skip
            self.tile_rows(b, ptrs, blocks, valid, band)


def emit_conv2d_direct(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    w_shape: Shape,
    strides: Shape,
    pads: Shape,
    dilations: Shape,
    group: int,
    has_bias: bool,
    has_residual: bool,
    act: tuple[str, float, float],
    x_blocked: bool = False,
    out_blocked: bool = False,
) -> KernelFn:
    """Conv with ``c16``-packed weights; args ``x, w_packed, [bias], [residual], out``.

    ``w_shape`` is the logical ONNX shape ``(M, C/group, KH, KW)``; the buffer holds
    ``pack.pack_conv_weights(w, group)``. Same semantics as ``conv2d.emit_conv2d``.
    ``x_shape`` is the logical NCHW shape; ``x_blocked`` / ``out_blocked`` read the input /
    write the output (and read the residual) in the blocked layout ``(N, ceil(C/16), H, W,
    16)`` instead (group 1 only; the output's channel tail is written as zeros).
    """
    if (x_blocked or out_blocked) and group != 1:
        raise ValueError(f"conv: blocked activations need group 1, got group {group}")
    tile = direct_tile(module)
    if w_shape[1] * w_shape[2] * w_shape[3] <= NARROW_K and tile.blocks > 1:
        tile = DirectTile(tile.width, tile.pixels, 1, tile.constraint)
    g = _Conv.checked(
        x_shape, w_shape, strides, pads, dilations, group, tile,
        CHANNEL_BLOCK if x_blocked else 1, CHANNEL_BLOCK if out_blocked else 0,
    )  # fmt: skip
    fn, b, args = loops.new_function(module, name, 3 + has_bias + has_residual)
    em = _Emitter(module, name, g, has_bias, has_residual, tuple(act))
    full, tail = divmod(g.mg, g.tile.channels)
    if full:
        em.channel_tiles(b, args, full, 0, g.tile.blocks, g.tile.channels)
    if tail:
        em.channel_tiles(b, args, 1, full, -(-tail // CHANNEL_BLOCK), tail)
    b.ret_void()
    return KernelFn(fn)
