"""int8 depthwise convolution on 4-way byte dot products (x86 ``vpdpbusd``, AArch64 ``sdot``).

Per input channel the byte plane is copied once into scratch, inside a border of the
zero point (in the kernel's activation domain, ``qisa.act_domain``: bytes xored with 0x80
where the domain flips; the border is written once per task and never overwritten),
rows ``wp = pl + w + pr`` bytes apart, plus slack so vector loads past the last row stay
in bounds. The kernel row ``ki`` taps ``j`` sit at padded columns
``ox*sw + j*dw``; their offsets ``p = j*dw`` are split into dword groups ``p // 4``. For an
output chunk of ``L`` columns starting at ``ox0`` and a group ``g``, one ``4L``-byte load at
column ``ox0*sw + 4g`` of input row ``oy*sh + ki*dh`` and ONE constant byte shuffle
(``vpermb`` / ``tbl``) give lane ``x`` the dword ``[in[x*sw + t] for t < 4]``; one dot
product with the broadcast weight dword (byte ``t`` = ``w[ki, j]`` where ``j*dw = 4g + t``,
else 0) accumulates that group's taps. Bytes under a 0 weight (slack, the next row) add 0.

Exactness: the i32 accumulator starts at the folded bias ``bias - zp' * sum(w)``
(``qpack.make_params`` with the kernel's ``ActDomain``) and the non-saturating dot
products add every ``x' * w`` exactly (wrap-around int32, exact for any real layer),
so the accumulator is ``requant.py``'s exact one and the shared epilogue gives the same
bits as every other int8 kernel. ``R`` output rows are computed per pass (shuffled input
rows reused across them); left-over rows take passes of ``R/2``, ``R/4``, ... rows.

Threads and tails are as in ``qdepthwise``: tasks are contiguous ranges of the ``n * c``
planes, each with its own two scratch planes (plane ``i + 1`` is copied into one before
plane ``i`` is computed from the other, so the copy's stores retire before the vector
loads that span them: no store-forwarding stalls on small planes); the last chunk of a
row overlaps the previous one (``ow >= L``) or is masked (``ow < L``).

Eligibility (``lanes``): ``vnni512`` (16, 8 or 4 lanes by row width), ``vnni256`` (8 or
4) or ``sdot`` (4), and ``sw <= 4`` (a lane's 4 bytes then lie in the ``4L`` loaded
ones). With ``avx512vbmi`` the shuffle is one ``vpermb`` (``vpermw`` for even strides);
without it LLVM emits ``vpermq`` + ``vpshufb``, still ~2x faster than the float kernel
(measured on znver4 running cascadelake / x86-64-v3+avx512vnni code); ``madd*``/``widen``
keep the float kernel.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops, parallel
from nnc.backends.llvm.kernels import qdepthwise as qdw
from nnc.backends.llvm.kernels.qisa import QIsa, target_features
from nnc.backends.llvm.kernels.qpack import ActDomain, Params, ceil_to, const_global
from nnc.backends.llvm.kernels.requant import emit_epilogue, splat
from nnc.backends.llvm.loops import F32, I8, I32, for_range, gep, i64
from nnc.backends.llvm.targets import Target

#: Largest column stride: a lane's 4 bytes must lie in its chunk's ``4L`` loaded bytes.
MAX_STRIDE = 4


def lanes(target: Target, isa: QIsa, sw: int, ow: int) -> int:
    """i32 lanes of the dot kernel for ``target``/``isa``, column stride ``sw`` and row
    width ``ow`` (the ISA's lanes, halved while half still covers the row), or 0 when the
    float kernel (``qdepthwise``) is to be used instead (no 4-way dot product, ``sw > 4``)."""
    if sw > MAX_STRIDE:
        return 0
    if isa.name == "vnni512":  # narrower vpdpbusd forms need avx512vl
        return qdw.vector_width(16, ow) if "avx512vl" in target_features(target) else 16
    if isa.name == "vnni256":  # avxvnni or avx512vnni + avx512vl: xmm and ymm forms
        return qdw.vector_width(8, ow)
    if isa.name == "sdot":
        return 4
    return 0


#: Most output rows per pass (a power of two).
MAX_ROWS = 4


def rows_per_pass(d: dict) -> int:
    """Output rows per pass: up to ``MAX_ROWS`` (halved while above ``oh``) when
    consecutive rows share input rows (``sh < kh*dh``), else 1."""
    if d["sh"] >= d["kh"] * d["dh"]:
        return 1
    rows = MAX_ROWS
    while rows > 1 and rows > d["oh"]:
        rows //= 2
    return rows


def _groups(d: dict) -> list[int]:
    """Dword groups holding at least one tap offset ``j * dw``."""
    return sorted({j * d["dw"] // 4 for j in range(d["kw"])})


def _plane_bytes(d: dict, width: int) -> int:
    hp, wp = d["h"] + d["pt"] + d["pb"], d["w"] + d["pl"] + d["pr"]
    return ceil_to(hp * wp + 4 * width + 4 * (_groups(d)[-1] + 1) + 64, 64)


def scratch_bytes(d: dict, width: int) -> int:
    """Two zero-point padded byte planes (with load slack) per task."""
    return qdw.tasks(d) * 2 * _plane_bytes(d, width)


def pack_weights(w2d: np.ndarray, d: dict) -> np.ndarray:
    """``[m, kh*kw]`` s8 -> ``[m, kh, groups, 4]`` s8 dwords (0 where no tap)."""
    groups = _groups(d)
    m, kh, kw, dw = w2d.shape[0], d["kh"], d["kw"], d["dw"]
    out = np.zeros((m, kh, len(groups), 4), np.int8)
    w = w2d.reshape(m, kh, kw)
    for j in range(kw):
        g, t = divmod(j * dw, 4)
        out[:, :, groups.index(g), t] = w[:, :, j]
    return out.reshape(-1)


def _fill_pads(b, d: dict, dst, dom: ActDomain) -> None:
    """Every byte of the padded plane at ``dst`` <- ``dom.zp`` (once per task: the plane
    copies only overwrite the interior, so the pads keep the zero point)."""
    hp, wp = d["h"] + d["pt"] + d["pb"], d["w"] + d["pl"] + d["pr"]
    zp = ir.Constant(I8, dom.zp & 0xFF)
    with for_range(b, 0, hp * wp, name="fill") as i:
        loops.store_at(b, zp, dst, i)


def _copy_plane(b, d: dict, src, dst, dom: ActDomain) -> None:
    """The interior of the padded plane at ``dst`` <- the ``[h, w]`` plane at ``src``
    (bytes xored with 0x80 when ``dom.flip``): per row, vectors of the largest power of
    two ``v <= min(w, 64)`` bytes, the last one at ``w - v`` (overlapping, never past
    the row)."""
    h, w, pt, pl, pr = (d[k] for k in ("h", "w", "pt", "pl", "pr"))
    wp = w + pl + pr
    v = 1 << (min(w, 64).bit_length() - 1)
    offs = list(range(0, w - v + 1, v))
    offs += [w - v] if offs[-1] != w - v else []
    vec = ir.VectorType(I8, v)
    flip = ir.Constant(vec, [0x80] * v)
    with for_range(b, 0, h, name="cy") as y:
        s_row = gep(b, src, b.mul(y, i64(w)))
        d_row = gep(b, dst, b.add(b.mul(b.add(y, i64(pt)), i64(wp)), i64(pl)))
        for o in offs:
            val = b.load(b.bitcast(gep(b, s_row, o), vec.as_pointer()), align=1)
            val = b.xor(val, flip) if dom.flip else val
            b.store(val, b.bitcast(gep(b, d_row, o), vec.as_pointer()), align=1)


class _Dot:
    """Operand shuffle and the dot-product step for ``width`` i32 lanes."""

    def __init__(self, module, isa: QIsa, width: int, sw: int):
        self.isa, self.width = isa, width
        self.bytes = ir.VectorType(I8, 4 * width)
        self.ivec = ir.VectorType(I32, width)
        self.mask = ir.Constant(
            ir.VectorType(I32, 4 * width), [x * sw + t for x in range(width) for t in range(4)]
        )
        if isa.name == "sdot":
            name = f"llvm.aarch64.neon.sdot.v{width}i32.v{4 * width}i8"
            self.fn = loops.intrinsic(module, name, self.ivec, [self.ivec, self.bytes, self.bytes])
        else:
            name = f"llvm.x86.avx512.vpdpbusd.{32 * width}"
            self.fn = loops.intrinsic(module, name, self.ivec, [self.ivec] * 3)

    def weight(self, b, ptr):
        """The broadcast weight dword at ``ptr`` in the step's operand type."""
        v = splat(b, b.load(b.bitcast(ptr, I32.as_pointer()), align=1), self.width)
        return b.bitcast(v, self.bytes) if self.isa.name == "sdot" else v

    def window(self, b, ptr):
        """Lane ``x`` <- the 4 bytes at ``ptr + x*sw``."""
        raw = b.load(b.bitcast(ptr, self.bytes.as_pointer()), align=1)
        v = b.shuffle_vector(raw, ir.Constant(self.bytes, ir.Undefined), self.mask)
        return v if self.isa.name == "sdot" else b.bitcast(v, self.ivec)

    def step(self, b, acc, act, wgt):
        return b.call(self.fn, [acc, act, wgt])


def emit_depthwise_dot(
    b, module, isa: QIsa, d: dict, dom: ActDomain, params: Params, w2d, x, res, out, scratch,
    width: int,
) -> None:  # fmt: skip
    """The depthwise conv body (module docstring). ``params`` folded with ``dom``'s zero
    point; ``scratch`` is ``scratch_bytes(d, width)`` bytes; ``x``/``res``/``out`` i8*."""
    n, c, m, oh, ow = d["n"], d["c"], d["m"], d["oh"], d["ow"]
    kh_n, sh, sw, dh = d["kh"], d["sh"], d["sw"], d["dh"]
    mg, epi, groups = m // c, params.epi, _groups(d)
    ng = len(groups)
    wp = d["w"] + d["pl"] + d["pr"]
    dot = _Dot(module, isa, width, sw)
    name = b.function.name
    f32p = F32.as_pointer()
    wglob = ir.Constant.bitcast(
        const_global(module, f"{name}.wdot", pack_weights(w2d, d)), I8.as_pointer()
    )
    bias_g = ir.Constant.bitcast(const_global(module, f"{name}.bias", params.bias),
                                 I32.as_pointer())  # fmt: skip
    mult_g = ir.Constant.bitcast(const_global(module, f"{name}.mult", params.mult), f32p)
    fb_g = None
    if params.fbias is not None:
        fb_g = ir.Constant.bitcast(const_global(module, f"{name}.fbias", params.fbias), f32p)
    oty = ir.VectorType(F32 if epi.out_bytes == 4 else I8, width)
    zero = ir.Constant(dot.ivec, None)
    ntasks, plane_bytes = qdw.tasks(d), _plane_bytes(d, width)
    rows = rows_per_pass(d)
    caps = [v for v in (x, res, out, scratch) if not isinstance(v, ir.Constant)]

    def body(b, lo, hi, args):
        it = iter(args)
        xa, ra, oa, sa = (v if isinstance(v, ir.Constant) else next(it)
                          for v in (x, res, out, scratch))  # fmt: skip
        with for_range(b, lo, hi, name="task") as t:
            p0 = b.udiv(b.mul(t, i64(n * c)), i64(ntasks))
            p1 = b.udiv(b.mul(b.add(t, i64(1)), i64(n * c)), i64(ntasks))
            bufs = gep(b, sa, b.mul(t, i64(2 * plane_bytes)))
            if any(d[k] for k in ("pt", "pl", "pb", "pr")):
                _fill_pads(b, d, bufs, dom)
                _fill_pads(b, d, gep(b, bufs, plane_bytes), dom)

            def copy(pi, buf):
                _copy_plane(b, d, gep(b, xa, b.mul(pi, i64(d["h"] * d["w"]))), buf, dom)

            def buffer(pi):  # plane pi of the task lives in buffer (pi - p0) % 2
                odd = b.and_(b.sub(pi, p0), i64(1))
                return gep(b, bufs, b.mul(odd, i64(plane_bytes)))

            # the next plane is copied before this one is computed: its stores retire
            # long before its vector loads (no store-to-load forwarding stalls)
            with b.if_then(b.icmp_signed("<", p0, p1)):
                copy(p0, bufs)
            with for_range(b, p0, p1, name="plane") as pi:
                nxt = b.add(pi, i64(1))
                with b.if_then(b.icmp_signed("<", nxt, p1)):
                    copy(nxt, buffer(nxt))
                img, ch = b.udiv(pi, i64(c)), b.urem(pi, i64(c))
                cur = buffer(pi)
                with for_range(b, 0, mg, name="mult") as j:
                    co = b.add(b.mul(ch, i64(mg)), j)
                    one_channel(b, img, co, ra, b.bitcast(oa, oty.element.as_pointer()), cur)

    def one_channel(b, img, co, res, out_t, pad):
        w_co = gep(b, wglob, b.mul(co, i64(kh_n * ng * 4)))
        wts = {(ki, gi): dot.weight(b, gep(b, w_co, (ki * ng + gi) * 4))
               for ki in range(kh_n) for gi in range(ng)}  # fmt: skip
        acc0 = splat(b, loops.load_at(b, bias_g, co), width)
        mult = splat(b, loops.load_at(b, mult_g, co), width)
        fbias = splat(b, loops.load_at(b, fb_g, co), width) if fb_g is not None else None
        plane_out = b.mul(b.add(b.mul(img, i64(m)), co), i64(oh * ow))

        def row_block(oy, nrows):
            r0 = gep(b, pad, b.mul(b.mul(oy, i64(sh)), i64(wp)))
            o_rows = [b.add(plane_out, b.mul(b.add(oy, i64(r)), i64(ow))) for r in range(nrows)]

            def chunk(ox0, count):
                col = b.mul(ox0, i64(sw))
                wins = {}
                accs = []
                for r in range(nrows):
                    acc = acc0
                    for ki in range(kh_n):
                        iy = r * sh + ki * dh
                        for gi, g in enumerate(groups):
                            if (iy, gi) not in wins:
                                off = b.add(col, i64(iy * wp + 4 * g))
                                wins[iy, gi] = dot.window(b, gep(b, r0, off))
                            acc = dot.step(b, acc, wins[iy, gi], wts[ki, gi])
                    accs.append(acc)
                for r, acc in enumerate(accs):
                    idx = b.add(o_rows[r], ox0)
                    rv = None
                    if epi.r_dtype:
                        rptr, rvec = gep(b, res, idx), ir.VectorType(I8, width)
                        rv = (b.load(b.bitcast(rptr, rvec.as_pointer()), align=1)
                              if count == width else
                              qdw._masked(module, b, "load", rvec, rptr, count))  # fmt: skip
                    y = emit_epilogue(b, module, epi, acc, zero, mult, fbias, rv)
                    optr = gep(b, out_t, idx)
                    if count == width:
                        b.store(y, b.bitcast(optr, oty.as_pointer()), align=1)
                    else:
                        qdw._masked(module, b, "store", oty, optr, count, y)

            full = ow // width
            if full:
                with for_range(b, 0, full, name="q") as qi:
                    chunk(b.mul(qi, i64(width)), width)
            if ow % width:
                chunk(i64(ow - width), width) if full else chunk(i64(0), ow)

        y0, nrows = 0, rows
        while y0 < oh:  # passes of `rows` rows, then halves for the rows left over
            blocks = (oh - y0) // nrows
            if blocks > 1:
                with for_range(b, 0, blocks, name="oy") as yb:
                    row_block(b.add(b.mul(yb, i64(nrows)), i64(y0)), nrows)
            elif blocks:
                row_block(i64(y0), nrows)
            y0, nrows = y0 + blocks * nrows, nrows // 2

    parallel.parallel_for(b, ntasks, caps, body, work=qdw._work(d), name="dwdot")
