"""int8 conv with output PIXELS as micro-kernel rows and OUTPUT CHANNELS in the vector lanes.

For small output planes (ResNet's 14x14 / 7x7 layers, MobileNetV2's late 1x1 convs) the
channels-on-rows paths (``qconv`` im2col, ``qconv_implicit``) fill their 16-lane pixel
vectors poorly (49 pixels -> 64 lanes). Here the GEMM is transposed: ``C[P][M] =
A[P][K] @ B[K][M]`` with ``qgemm``'s activations-as-A micro-kernel (``act_is_a``, params
indexed by column), so the lanes hold output channels, which come in multiples of 16.

Per image, in scratch:

* ``XN[HP][WP][Cp]``: the zero-point padded input, pixel major (``Cp = ceil(C/g)*g``,
  channels past ``C`` hold the zero point; their weights are 0), the activation domain
  change of ``qisa`` applied while transposing from NCHW;
* ``A[P][KH*KW*Cp]``: per output pixel its taps' channel vectors (``k = (kh, kw, c)``),
  copied as ``Cp``-byte runs from ``XN`` (for a 1x1 stride-1 unpadded conv ``A`` is
  ``XN`` itself);
* ``R[P][M]``: the residual transposed from NCHW; ``Y[P][M]``: the requantized output
  pixel major, then transposed into NCHW.

The weights are packed at compile time as B panels ``[K/g][nr][g]``, one per block of
``nr`` output channels (``pixrow_weights``); per-channel params are vectors along the
lanes. The tiles are ``qgemm``'s micro-kernels (``QMicro``, register tile from
``tile_isa``) called by ``_emit_gemm``. Every copy and the tiles run on the thread pool
when big enough (``parallel``; no task's code depends on the cut, so results are bitwise
identical at any thread count).
Numeric contract: ``requant.py`` (same integer sums and epilogue as the other paths).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels.qconv_implicit import _cat, _memcpy
from nnc.backends.llvm.kernels.qgemm import I8_PTR, QMicro, QMicroCache, QTiling, _gep_nn
from nnc.backends.llvm.kernels.qisa import QIsa
from nnc.backends.llvm.kernels.qpack import ceil_to, const_global, pack_panel, param_globals
from nnc.backends.llvm.kernels.requant import epilogue_args, epilogue_key
from nnc.backends.llvm.loops import I8, I32, I64, VOID, for_range, gep, i64
from nnc.backends.llvm.parallel import parallel_for

I1 = ir.IntType(1)
#: Default choice (``preferred``): output planes up to this many pixels (28x28) on
#: vnni512; with narrower vectors, spatial kernels up to ``NARROW_PIXELS`` (14x14) and
#: 1x1 convs up to ``NARROW_PIXELS_1X1`` (8x8).
MAX_PIXELS = 784
NARROW_PIXELS = 196
NARROW_PIXELS_1X1 = 64
#: Largest activation panel ``A`` (bytes) of a preferred conv: the pixel tiles re-read it
#: once per channel block, from L2 while it fits (ResNet-18's largest: 28x28 x 1152).
MAX_PANEL = 1 << 20

#: Register tiles (pixel rows, vectors of output channels), in order of preference; only
#: those with at most the ISA's default accumulator count are used (vnni256 may have 16
#: registers only). On vnni512 (Zen 4) the first four ran ResNet-18's 7x7/14x14 3x3 convs
#: at 430-445 GFLOP/s (7x4, with 32 live vectors, spilled: 30% slower on 14x14).
TILES = ((8, 3), (7, 3), (4, 6), (8, 2), (6, 2), (4, 3))
#: Channels per task of the parallel transposes.
CHANS = 64


def eligible(isa: QIsa, d: dict, group: int) -> bool:
    """Whether this path handles the conv: a 4-byte dot-product ISA (``vpdpbusd``/
    ``sdot``), one group."""
    return isa.group == 4 and group == 1


def preferred(d: dict, isa: QIsa) -> bool:
    """Default choice for an ``eligible`` conv: small output planes (``MAX_PIXELS`` ...), at
    least 16 input channels (narrower inputs waste the padding of ``Cp``) and a panel of
    at most ``MAX_PANEL`` bytes. Measured on vnni512 (Zen 4, 1 thread, in ResNet-18 /
    MobileNetV2) against the implicit / im2col paths: 3x3 convs 1.3-1.4x faster on 7x7
    outputs, 1.15x on 14x14, ~1.03x on 28x28 (0.98x on 56x56); 1x1 convs 1.4-1.75x on
    7x7, 1.2-1.35x on 14x14, 1.0-1.17x on 28x28. vnni256 kernels (same host): 3x3 1.25x
    on 7x7, 1.1x on 14x14, 1.0x on 28x28; 1x1 1.05x on 7x7 but 0.75-0.85x on 14x14."""
    p, taps = d["oh"] * d["ow"], d["kh"] * d["kw"]
    if isa.width < 16:
        limit = NARROW_PIXELS if taps > 1 else NARROW_PIXELS_1X1
    else:
        limit = MAX_PIXELS
    return p <= limit and d["c"] >= 16 and p * taps * ceil_to(d["c"], isa.group) <= MAX_PANEL


def tile_isa(isa: QIsa, p: int, m: int) -> QIsa:
    """``isa`` with the register tile of ``TILES`` (at most ``isa.mr * isa.nrv``
    accumulators) that pads ``p`` pixel rows and ``m`` channel columns the least (the
    first on ties)."""
    fits = [t for t in TILES if t[0] * t[1] <= isa.mr * isa.nrv]
    mr, nrv = min(fits, key=lambda t: ceil_to(p, t[0]) * ceil_to(m, t[1] * isa.width))
    return dataclasses.replace(isa, mr=mr, nrv=nrv)


def pixrow_weights(wq: np.ndarray, g: int, nr: int, lanes: int) -> np.ndarray:
    """s8 ``[M, C, KH, KW]`` -> B panels ``[K/g][width][g]`` with ``k = (kh, kw, c)``, one
    per block of ``nr`` output channels (``width = nr``; the last block ``ceil(rest /
    lanes) * lanes``), one after the other: block ``j`` at byte ``K * j * nr``. A tile
    then streams contiguous bytes (a single ``[K/g][M][g]`` panel spaces them ``M*g``
    apart: L2 set conflicts, 1.4x slower on ResNet-18's layer4)."""
    m, c, kh, kw = wq.shape
    w = np.zeros((kh, kw, ceil_to(c, g), m), np.int8)
    w[:, :, :c] = wq.transpose(2, 3, 1, 0)
    w = w.reshape(-1, m)
    blocks = [
        pack_panel(w[:, j : j + nr], g, ceil_to(min(nr, m - j), lanes)) for j in range(0, m, nr)
    ]
    return np.concatenate(blocks)


def _geo(d: dict, isa: QIsa, ob: int, has_res: bool) -> dict:
    hp, wp = d["h"] + d["pt"] + d["pb"], d["w"] + d["pl"] + d["pr"]
    cp, taps, p = ceil_to(d["c"], isa.group), d["kh"] * d["kw"], d["oh"] * d["ow"]
    direct = taps == 1 and d["strides"] == (1, 1) and not any(d["pads"])
    xn = ceil_to(hp * wp * cp, 64)
    panel = 0 if direct else ceil_to(p * taps * cp, 64)
    y = ceil_to(p * d["m"] * ob, 64)
    r = ceil_to(p * d["m"], 64) if has_res else 0
    return dict(hp=hp, wp=wp, cp=cp, taps=taps, p=p, direct=direct, xn=xn, panel=panel, y=y,
                r=r)  # fmt: skip


def scratch_bytes(d: dict, isa: QIsa, ob: int, has_res: bool) -> int:
    """Scratch of ``emit_pixrows``: ``XN``, ``A``, ``Y`` and ``R``."""
    g = _geo(d, isa, ob, has_res)
    return g["xn"] + g["panel"] + g["y"] + g["r"]


# -- transposes ---------------------------------------------------------------------------


def _pow2_at_most(n: int, cap: int) -> int:
    t = 1
    while t * 2 <= min(n, cap):
        t *= 2
    return t


def emit_transpose(b, src, src_ld, dst, dst_ld, rows: int, cols: int, ety, flip=False):
    """``dst[j*dst_ld + i] = src[i*src_ld + j] (^ 0x80 if flip)`` for ``i < rows``,
    ``j < cols`` (``src``/``dst`` point to ``ety`` elements; ``*_ld`` are i64 values or
    ints). Blocks of ``tr x tc`` (powers of two up to 16) are transposed in registers with
    one shuffle; a last partial block along either axis is redone overlapping the
    previous one (it rewrites the same values)."""
    if rows <= 0 or cols <= 0:
        return
    src_ld, dst_ld = (i64(v) if isinstance(v, int) else v for v in (src_ld, dst_ld))
    cap = 16 if ety == I8 else 8
    tr, tc = _pow2_at_most(rows, cap), _pow2_at_most(cols, cap)
    row_t, col_t = ir.VectorType(ety, tc), ir.VectorType(ety, tr)
    mask = ir.Constant(ir.VectorType(I32, tr * tc), [i * tc + j for j in range(tc)
                                                     for i in range(tr)])  # fmt: skip
    flip_v = ir.Constant(row_t, [0x80] * tc) if flip else None

    def block(i0, j0):
        vals = []
        for i in range(tr):
            at = b.add(b.mul(b.add(i0, i64(i)), src_ld), j0)
            v = b.load(b.bitcast(gep(b, src, at), row_t.as_pointer()), align=1)
            vals.append(b.xor(v, flip_v) if flip else v)
        while len(vals) > 1:
            n = vals[0].type.count
            vals = [b.shuffle_vector(vals[k], vals[k + 1], _cat(n)) for k in range(0, len(vals), 2)]
        t = vals[0]
        if tr > 1 and tc > 1:
            t = b.shuffle_vector(t, ir.Constant(t.type, ir.Undefined), mask)
        for j in range(tc):
            part = t
            if tc > 1:
                lanes = ir.Constant(ir.VectorType(I32, tr), list(range(j * tr, (j + 1) * tr)))
                part = b.shuffle_vector(t, ir.Constant(t.type, ir.Undefined), lanes)
            at = b.add(b.mul(b.add(j0, i64(j)), dst_ld), i0)
            b.store(part, b.bitcast(gep(b, dst, at), col_t.as_pointer()), align=1)

    def runs(n, t):  # loop bounds of full blocks, then the overlapping last block's start
        return n // t, (n - t if n % t else None)

    (ni, ri), (nj, rj) = runs(rows, tr), runs(cols, tc)

    def over_j(i0):
        with for_range(b, 0, nj, name="tj") as bj:
            block(i0, b.mul(bj, i64(tc)))
        if rj is not None:
            block(i0, i64(rj))

    with for_range(b, 0, ni, name="ti") as bi:
        over_j(b.mul(bi, i64(tr)))
    if ri is not None:
        over_j(i64(ri))


# -- the conv -----------------------------------------------------------------------------


def _emit_fill_xn(b, x, xn, d: dict, g: dict, zp: int, flip: bool) -> None:
    """``XN`` from the NCHW bytes ``x`` of one image (see module doc). Without left/right
    pads the image rows are one ``[C][H*W]`` -> ``[H*W][Cp]`` transpose (tasks: channel
    blocks), else one transpose per row (tasks: padded rows)."""
    h, w, c, pt, pl, wp, cp = d["h"], d["w"], d["c"], d["pt"], d["pl"], g["wp"], g["cp"]
    memset = loops.intrinsic(b.module, "llvm.memset.p0.i64", VOID, [I8_PTR, I8, I64, I1])

    def fill(bb, at, n):
        bb.call(memset, [at, ir.Constant(I8, zp), i64(n), ir.Constant(I1, 0)])

    if not (d["pl"] or d["pr"]):
        if pt or d["pb"] or cp != c:
            fill(b, xn, g["hp"] * wp * cp)
        _emit_chan_transpose(b, x, gep(b, xn, pt * wp * cp), c, h * w, I8, False, "xn", cp, flip)
        return

    def rows(bb, lo, hi, a):  # padded rows [lo, hi)
        x, xn = a
        with for_range(bb, lo, hi, name="xr") as yp:
            row = gep(bb, xn, bb.mul(yp, i64(wp * cp)))
            y = bb.sub(yp, i64(pt))
            inside = bb.and_(bb.icmp_signed(">=", y, i64(0)), bb.icmp_signed("<", y, i64(h)))
            fill(bb, row, wp * cp)
            with bb.if_then(inside):
                emit_transpose(bb, gep(bb, x, bb.mul(y, i64(w))), h * w,
                               gep(bb, row, pl * cp), cp, c, w, I8, flip)  # fmt: skip

    parallel_for(b, g["hp"], [x, xn], rows, work=2 * g["hp"] * g["wp"] * cp, name="xn")


def _emit_panel(b, xn, panel, d: dict, g: dict) -> None:
    """``A`` from ``XN``: per output pixel, its taps' ``Cp``-byte runs; tasks are output rows."""
    ow, cp, wp = d["ow"], g["cp"], g["wp"]
    (sh, sw), (dh, dw), kw = d["strides"], d["dil"], d["kw"]
    row_bytes = g["taps"] * cp

    def rows(bb, lo, hi, a):
        xn, panel = a
        with for_range(bb, lo, hi, name="ar") as oy, for_range(bb, 0, ow, name="ax") as ox:
            pix = bb.add(bb.mul(oy, i64(ow)), ox)
            dst = gep(bb, panel, bb.mul(pix, i64(row_bytes)))
            src = bb.add(bb.mul(oy, i64(sh * wp)), bb.mul(ox, i64(sw)))
            for t in range(g["taps"]):
                off = (t // kw) * dh * wp + (t % kw) * dw
                at = bb.mul(bb.add(src, i64(off)), i64(cp))
                _memcpy(bb, gep(bb, dst, t * cp), gep(bb, xn, at), cp)

    parallel_for(b, d["oh"], [xn, panel], rows, work=2 * g["p"] * row_bytes, name="pan")


def _emit_chan_transpose(b, src, dst, m, p, ety, to_nchw, name, ld=None, flip=False) -> None:
    """``[P][M]`` <-> ``[M][P]`` (``to_nchw``: pixel major to NCHW; pixel-major rows are
    ``ld`` elements apart, default ``m``; ``flip``: see ``emit_transpose``); tasks are
    blocks of ``CHANS`` channels (the last one shorter)."""
    full, tail = divmod(m, CHANS)
    ld = m if ld is None else ld

    def one(bb, s, t, c0, nc):
        if to_nchw:  # s[p][m] -> t[m][p]
            emit_transpose(bb, gep(bb, s, c0), ld, gep(bb, t, bb.mul(c0, i64(p))), p, p, nc, ety)
        else:  # s[m][p] -> t[p][m]
            emit_transpose(bb, gep(bb, s, bb.mul(c0, i64(p))), p, gep(bb, t, c0), ld, nc, p, ety,
                           flip)  # fmt: skip

    def body(bb, lo, hi, a):
        s, t = (bb.bitcast(v, ety.as_pointer()) for v in a)
        with for_range(bb, lo, hi, name="ct") as task:
            c0 = bb.mul(task, i64(CHANS))
            if not tail:
                one(bb, s, t, c0, CHANS)
            elif not full:
                one(bb, s, t, c0, tail)
            else:
                with bb.if_else(bb.icmp_signed("<", task, i64(full))) as (then, other):
                    with then:
                        one(bb, s, t, c0, CHANS)
                    with other:
                        one(bb, s, t, c0, tail)

    parallel_for(b, full + (tail > 0), [src, dst], body, work=2 * m * p * ety.width // 8,
                 name=name)  # fmt: skip


def _emit_gemm(b, cache: QMicroCache, isa: QIsa, t: QTiling, a, wblk, bias, mult, fbias, res, out):
    """``out[P][M] = epilogue(A @ B)`` (``t``: rows = pixels, cols = channels; ``t.b_kq``
    unused) over the blocked weights of ``pixrow_weights``: one task per (channel block,
    pixel tile), channel blocks outer (a weight block stays in L2 while the pixel tiles
    use it); every tile is one micro-kernel call whatever the tasks."""
    mr, nr, g = isa.mr, isa.nr, isa.group
    (rfull, rtail), (cfull, ctail) = divmod(t.rows, mr), divmod(t.cols, nr)
    nrt, nct = rfull + (rtail > 0), cfull + (ctail > 0)
    unroll = next(u for u in (4, 2, 1) if t.kq % u == 0)
    key, eargs = epilogue_key(t.epi), epilogue_args(t.epi)
    ptrs = [a, wblk, bias, mult, fbias, res, out]
    caps = [p for p in ptrs if not isinstance(p, ir.Constant)]
    kbytes = t.kq * g
    ob = t.epi.out_bytes

    def body(bb, lo, hi, args):
        it = iter(args)
        pa, pw, pbias, pmult, pfbias, pres, pout = (
            p if isinstance(p, ir.Constant) else next(it) for p in ptrs
        )

        def call(i0, rows, j0, cols):
            spec = QMicro(isa, rows, cols, unroll, True, t.act_signed, False, key)
            width = ceil_to(cols, isa.width)
            pos = bb.add(bb.mul(i0, i64(t.ldc)), j0)
            bb.call(cache.get(spec), [
                gep(bb, pa, bb.mul(i0, i64(t.a_row))), gep(bb, pw, bb.mul(j0, i64(kbytes))),
                _gep_nn(bb, pbias, j0), _gep_nn(bb, pmult, j0), _gep_nn(bb, pfbias, j0),
                _gep_nn(bb, pres, pos), gep(bb, pout, bb.mul(pos, i64(ob))),
                i64(t.kq), i64(t.a_row), i64(width * g), i64(t.ldc), *eargs,
            ])  # fmt: skip

        with for_range(bb, lo, hi, name="pt") as task:
            jb, ib = bb.udiv(task, i64(nrt)), bb.urem(task, i64(nrt))
            i0, j0 = bb.mul(ib, i64(mr)), bb.mul(jb, i64(nr))

            def by_rows(cols):
                loops.full_or_tail(bb, ib, rfull, mr, rtail, lambda r: call(i0, r, j0, cols))

            loops.full_or_tail(bb, jb, cfull, nr, ctail, by_rows)

    work = 2 * t.rows * t.cols * kbytes
    parallel_for(b, nrt * nct, caps, body, work=work, name="ptiles")


def emit_pixrows(b, module, name: str, isa: QIsa, d: dict, dom, params, wq, x, res, out, scr):
    """The conv of ``qconv.emit_qconv`` for ``eligible`` shapes; ``scr`` holds
    ``scratch_bytes(d, isa, ...)`` bytes."""
    epi, has_res = params.epi, d["has_res"]
    ob = epi.out_bytes
    g = _geo(d, isa, ob, has_res)
    m, c, h, w, p, cp = d["m"], d["c"], d["h"], d["w"], g["p"], g["cp"]
    tisa = tile_isa(isa, p, m)
    k = g["taps"] * cp
    wts = pixrow_weights(wq, isa.group, tisa.nr, isa.width)
    wblk = b.bitcast(const_global(module, f"{name}.wpix", wts), I8_PTR)
    bias_p, mult_p, fbias_p = param_globals(b, module, name, params, ceil_to(m, tisa.nr))
    xn = scr
    panel = xn if g["direct"] else gep(b, scr, g["xn"])
    yv = gep(b, scr, g["xn"] + g["panel"])
    rv = gep(b, yv, g["y"]) if has_res else res
    ety = I32 if ob == 4 else I8
    tiling = QTiling(p, m, k // isa.group, k, 0, m, True, dom.signed, False, epi)
    cache = QMicroCache(module, name)
    with for_range(b, 0, d["n"], name="img") as img:
        _emit_fill_xn(b, gep(b, x, b.mul(img, i64(c * h * w))), xn, d, g, dom.zp & 0xFF,
                      dom.flip)  # fmt: skip
        if not g["direct"]:
            _emit_panel(b, xn, panel, d, g)
        base = b.mul(img, i64(m * p))
        if has_res:
            _emit_chan_transpose(b, gep(b, res, base), rv, m, p, I8, False, "pres")
        _emit_gemm(b, cache, tisa, tiling, panel, wblk, bias_p, mult_p, fbias_p, rv, yv)
        _emit_chan_transpose(b, yv, gep(b, out, b.mul(base, i64(ob))), m, p, ety, True, "pout")
