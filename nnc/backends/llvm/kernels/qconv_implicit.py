"""Implicit-GEMM int8 conv for VNNI (strides <= 2, no dilation, one group): no im2col panel.

Per image the input is copied once into a zero-point padded, channel-quad interleaved
buffer ``X4[C/4][sh][sw][HQ][WQ][4]`` (``HQ, WQ = ceil(HP/sh), ceil(WP/sw)``: the padded
plane split into its stride phases, phase ``(a, b)`` holding padded pixels ``(sh*y + a,
sw*x + b)``; the activation domain change of ``qisa`` applied; channels past ``C`` hold
the zero point, their weights are 0). The GEMM runs over VIRTUAL columns
``q = oy*WQ + ox`` (``ox < WQ``, so ``WQ - OW`` columns per output row are computed and
dropped): for k group (channel quad ``cq``, tap ``(i, j)``) column ``q`` reads the dword
of phase ``(i % sh, j % sw)`` at ``q + (i // sh)*WQ + j // sw``, so 16 consecutive
columns are one vector load at a constant per-tap offset from the quad's base, exactly
the B operand ``vpdpbusd`` wants. The weights are packed as rows ``[M][C/4][KH][KW][4]``
(``implicit_weights``) and broadcast, per-channel params by row as in ``qconv``. The
micro-kernel is ``qgemm``'s with ``QMicro.taps``. The requantized rows land in scratch
``[M][OH*WQ]`` and are compacted to NCHW; a residual is first expanded to that layout.
The interleave (tasks: channel quads) and the GEMM run on the thread pool when big
enough (``parallel``; no task's code depends on the cut); the GEMM's tasks are runs of
whole output-channel row blocks that also expand their residual rows before and compact
their output rows after their tiles (``qgemm.RowHooks``: no serial copies, no extra
barrier).
Numeric contract: ``requant.py`` (bit-identical to the im2col path: same integer sums,
same epilogue).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels.qgemm import I8_PTR, QMicroCache, QTiling, RowHooks, emit_tiles
from nnc.backends.llvm.kernels.qisa import QIsa
from nnc.backends.llvm.kernels.qpack import ceil_to, const_global, param_globals
from nnc.backends.llvm.loops import I8, I32, I64, VOID, for_range, gep, i64
from nnc.backends.llvm.parallel import parallel_for

I1 = ir.IntType(1)
#: Taps per k step above which the unrolled micro-kernel body gets too large.
MAX_TAPS = 25


def eligible(isa: QIsa, d: dict, group: int) -> bool:
    """Whether the implicit path handles this conv (VNNI, stride 1, dilation 1, one group,
    a 2..MAX_TAPS-tap kernel)."""
    taps = d["kh"] * d["kw"]
    return (
        isa.name.startswith("vnni")
        and group == 1
        and d["strides"] in ((1, 1), (1, 2), (2, 1), (2, 2))
        and d["dil"] == (1, 1)
        and 1 < taps <= MAX_TAPS
    )


def preferred(d: dict) -> bool:
    """Default choice for an ``eligible`` conv: unless padding the channels to quads adds
    over 20% multiply-adds (C=3 stems: MobileNetV2's 3x3 s2 measured 0.14 -> 0.17 ms
    implicit; im2col packs their k = (c, kh, kw) densely). ResNet-18's 3x3 convs run
    1.2-1.5x faster than with im2col (docs/quantization.md)."""
    return 4 * -(-d["c"] // 4) * 5 <= 6 * d["c"]


def implicit_weights(wq: np.ndarray) -> np.ndarray:
    """s8 ``[M, C, KH, KW]`` -> rows ``[M, ceil(C/4)*KH*KW*4]`` in (quad, kh, kw, lane) order."""
    m, c, kh, kw = wq.shape
    cq = -(-c // 4)
    w = np.zeros((m, cq * 4, kh, kw), np.int8)
    w[:, :c] = wq
    return np.ascontiguousarray(w.reshape(m, cq, 4, kh, kw).transpose(0, 1, 3, 4, 2)).reshape(m, -1)


def _geo(d: dict, ob: int, has_res: bool) -> dict:
    (sh, sw), hp, wp = d["strides"], d["h"] + d["pt"] + d["pb"], d["w"] + d["pl"] + d["pr"]
    hq, wq = -(-hp // sh), -(-wp // sw)
    q = d["oh"] * wq
    ncq, phase = -(-d["c"] // 4), hq * wq
    reach = ceil_to(q, 16) + (d["kh"] - 1) // sh * wq + (d["kw"] - 1) // sw + 1
    x4 = ceil_to(4 * max(ncq * sh * sw * phase, (ncq * sh * sw - 1) * phase + reach), 64)
    yv = ceil_to(d["m"] * q * ob, 64)
    rv = ceil_to(d["m"] * q, 64) if has_res else 0
    return dict(hq=hq, wq=wq, q=q, ncq=ncq, x4=x4, yv=yv, rv=rv)


def scratch_bytes(d: dict, ob: int, has_res: bool) -> int:
    """Scratch of ``emit_implicit``: X4, the virtual-column output and residual."""
    g = _geo(d, ob, has_res)
    return g["x4"] + g["yv"] + g["rv"]


def _memcpy(b, dst, src, n: int) -> None:
    fn = loops.intrinsic(b.module, "llvm.memcpy.p0.p0.i64", VOID, [I8_PTR, I8_PTR, I64, I1])
    b.call(fn, [dst, src, i64(n), ir.Constant(I1, 0)])


def _emit_interleave(b, x, x4, d: dict, g: dict, zp: int, flip: bool) -> None:
    """Fill ``X4`` from the NCHW bytes of one image (see module doc). Tasks are channel
    quads: each fills its own contiguous ``[sh][sw][HQ][WQ][4]`` region (zero point,
    then the copied pixels); the bytes past the last quad are filled by the caller."""
    h, w, c, pt, pl = d["h"], d["w"], d["c"], d["pt"], d["pl"]
    (sh, sw), hq, wq, ncq = d["strides"], g["hq"], g["wq"], g["ncq"]
    region = sh * sw * hq * wq * 4
    memset = loops.intrinsic(b.module, "llvm.memset.p0.i64", VOID, [I8_PTR, I8, I64, I1])
    if g["x4"] > ncq * region:
        tail = gep(b, x4, ncq * region)
        b.call(memset, [tail, ir.Constant(I8, zp), i64(g["x4"] - ncq * region), ir.Constant(I1, 0)])

    def phase_cols(bb: int) -> tuple[int, int, int]:
        """(first phase column, its source column, count) of column phase ``bb``."""
        x0p = max(0, -(-(pl - bb) // sw))
        x0 = sw * x0p + bb - pl
        return x0p, x0, (w - 1 - x0) // sw + 1 if x0 < w else 0

    def quad(b, x, x4, cq, lanes: int) -> None:
        with for_range(b, 0, h, name="xy") as y:
            rows = []
            for t in range(lanes):
                ch = b.add(b.mul(cq, i64(4)), i64(t))
                rows.append(gep(b, x, b.mul(b.add(b.mul(ch, i64(h)), y), i64(w))))
            yy = b.add(y, i64(pt))
            a, yq = b.urem(yy, i64(sh)), b.udiv(yy, i64(sh))
            for bb in range(sw):
                x0p, x0, n = phase_cols(bb)
                if n <= 0:
                    continue
                plane = b.add(b.mul(b.add(b.mul(cq, i64(sh)), a), i64(sw)), i64(bb))
                pix = b.add(b.mul(b.add(b.mul(plane, i64(hq)), yq), i64(wq)), i64(x0p))
                _emit_row(b, [gep(b, r, x0) for r in rows], gep(b, x4, b.mul(pix, i64(4))),
                          n, sw, zp, flip, w - x0)  # fmt: skip

    def quads(bb, lo, hi, args):  # channel quads [lo, hi) (parallel_for body)
        with for_range(bb, lo, hi, name="xq") as cq:
            dst = gep(bb, args[1], bb.mul(cq, i64(region)))
            bb.call(memset, [dst, ir.Constant(I8, zp), i64(region), ir.Constant(I1, 0)])
            if c % 4 == 0:
                quad(bb, args[0], args[1], cq, 4)
            else:
                with bb.if_else(bb.icmp_unsigned("<", cq, i64(c // 4))) as (full, part):
                    with full:
                        quad(bb, args[0], args[1], cq, 4)
                    with part:
                        quad(bb, args[0], args[1], cq, c % 4)

    # work: bytes read and written, x2 for the shuffles (measured ~2x a memcpy)
    parallel_for(b, ncq, [x, x4], quads, work=2 * (c * h * w + ncq * region), name="x4")


def _emit_row(b, rows, dst, n: int, step: int, zp: int, flip: bool, room: int) -> None:
    """``dst[k][t] = rows[t][k * step]`` for ``k < n``, ``t < 4`` (rows past ``len(rows)``
    read as ``zp``), in vector chunks; a last partial chunk overlaps the previous one.
    Loads never pass ``room`` bytes from a row's start (strided chunks load a whole
    ``width * step`` span where that stays inside: cheaper shuffles)."""
    width = min(16, n)
    vec = ir.VectorType(I8, width)
    exact = ir.VectorType(I8, (width - 1) * step + 1)
    wide = ir.VectorType(I8, width * step)
    loop_span = wide if step > 1 and n // width * width * step <= room else exact
    fill = ir.Constant(vec, [zp] * width)
    flip_v = ir.Constant(vec, [0x80] * width)
    mask4 = [t * width + p for p in range(width) for t in range(4)]
    mask4 = ir.Constant(ir.VectorType(I32, 4 * width), mask4)

    def chunk(xo, span):
        vals = []
        for t in range(4):
            if t >= len(rows):
                vals.append(fill)
                continue
            v = b.load(b.bitcast(gep(b, rows[t], b.mul(xo, i64(step))), span.as_pointer()),
                       align=1)  # fmt: skip
            if step > 1:
                lanes = ir.Constant(ir.VectorType(I32, width), [i * step for i in range(width)])
                v = b.shuffle_vector(v, ir.Constant(span, ir.Undefined), lanes)
            vals.append(b.xor(v, flip_v) if flip else v)
        lo = b.shuffle_vector(vals[0], vals[1], _cat(width))
        hi = b.shuffle_vector(vals[2], vals[3], _cat(width))
        out = b.shuffle_vector(b.shuffle_vector(lo, hi, _cat(width * 2)),
                               ir.Constant(ir.VectorType(I8, 4 * width), None), mask4)  # fmt: skip
        ptr = b.bitcast(gep(b, dst, b.mul(xo, i64(4))), out.type.as_pointer())
        b.store(out, ptr, align=1)

    with for_range(b, 0, n // width, name="xc") as ci:
        chunk(b.mul(ci, i64(width)), loop_span)
    if n % width:
        chunk(i64(n - width), wide if step > 1 and n * step <= room else exact)


def _cat(n: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))


def emit_implicit(b, module, name: str, isa: QIsa, d: dict, dom, params, wts, x, res, out, scr):
    """The conv of ``qconv.emit_qconv`` for ``eligible`` shapes; ``scr`` holds
    ``scratch_bytes`` bytes."""
    epi, ob, has_res = params.epi, params.epi.out_bytes, d["has_res"]
    g = _geo(d, ob, has_res)
    m, c, h, w, oh, ow = d["m"], d["c"], d["h"], d["w"], d["oh"], d["ow"]
    (sh, sw), wq, q = d["strides"], g["wq"], g["q"]
    x4 = scr
    yv = gep(b, scr, g["x4"])
    rv = gep(b, yv, g["yv"]) if has_res else res
    w_rows = implicit_weights(wts)
    kp = w_rows.shape[1]
    wrows = b.bitcast(const_global(module, f"{name}.wimp", w_rows), I8_PTR)
    bias_p, mult_p, fbias_p = param_globals(b, module, name, params, m)
    phase = g["hq"] * wq
    taps = tuple(
        (((i % sh) * sw + j % sw) * phase + i // sh * wq + j // sw) * 4
        for i in range(d["kh"])
        for j in range(d["kw"])
    )
    tiling = QTiling(m, q, g["ncq"], kp, sh * sw * phase * 4, q, False, dom.signed, True, epi, taps)
    cache = QMicroCache(module, name)
    with for_range(b, 0, d["n"], name="img") as img:
        _emit_interleave(b, gep(b, x, b.mul(img, i64(c * h * w))), x4, d, g, dom.zp & 0xFF,
                         dom.flip)  # fmt: skip
        base = b.mul(img, i64(m * oh * ow))

        def expand(bb, lo, hi, res, rv, base):  # residual rows [lo, hi) of (channel, oy)
            with for_range(bb, lo, hi, name="rr") as r:
                src = gep(bb, res, bb.add(base, bb.mul(r, i64(ow))))
                _memcpy(bb, gep(bb, rv, bb.mul(r, i64(wq))), src, ow)

        def compact(bb, lo, hi, out, yv, base):  # output rows [lo, hi) of (channel, oy)
            with for_range(bb, lo, hi, name="cr") as r:
                dst = gep(bb, out, bb.mul(bb.add(base, bb.mul(r, i64(ow))), i64(ob)))
                _memcpy(bb, dst, gep(bb, yv, bb.mul(r, i64(wq * ob))), ow * ob)

        hooks = RowHooks(
            (res, out, base),
            (lambda bb, r0, r1, p, e: expand(bb, bb.mul(r0, i64(oh)), bb.mul(r1, i64(oh)),
                                             e[0], p[5], e[2])) if has_res else None,
            lambda bb, r0, r1, p, e: compact(bb, bb.mul(r0, i64(oh)), bb.mul(r1, i64(oh)),
                                             e[1], p[6], e[2]),
        )  # fmt: skip
        emit_tiles(b, cache, isa, tiling, wrows, x4, bias_p, mult_p, fbias_p, rv, yv, hooks)
