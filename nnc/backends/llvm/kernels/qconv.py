"""int8 2-D convolution (NCHW, strides, pads, dilations, groups incl. depthwise) on qgemm.

Per image and group the kernel builds the im2col matrix of the activations in scratch,
directly in the micro-kernel's B panel layout ``[k / g][P][g]`` (``k = (c*KH + kh)*KW + kw``,
``P = OH*OW`` pixels; padded taps hold the zero point, so they contribute exactly 0
after the folded correction; the activation domain change of ``qisa`` is applied while
copying). The weights, packed at compile time as rows ``[M][ceil(K/g)*g]``, are the
broadcast operand, so output channels are rows and pixels are vector lanes: the
requantized output, per-channel params indexed by row, lands contiguously in NCHW.
Numeric contract: ``requant.py``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels import qconv_implicit as qimp
from nnc.backends.llvm.kernels import qconv_pixrows as qpix
from nnc.backends.llvm.kernels import qdepthwise as qdw
from nnc.backends.llvm.kernels import qdepthwise_dot as qdwd
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.qgemm import I8_PTR, QMicroCache, QTiling, emit_tiles
from nnc.backends.llvm.kernels.qisa import module_target, select_qisa
from nnc.backends.llvm.kernels.qpack import (
    ActDomain,
    as_array,
    ceil_to,
    const_global,
    make_params,
    null,
    pad_rows,
    param_globals,
)
from nnc.backends.llvm.kernels.requant import emit_epilogue
from nnc.backends.llvm.loops import F32, I8, I32, for_range, gep, i64
from nnc.backends.llvm.parallel import parallel_for

Shape = tuple[int, ...]


def _emit_pad_planes(b, src, dst, planes: int, h: int, w: int, pads, fill, flip: bool) -> None:
    """Copy ``planes`` ``[h, w]`` byte planes into ``dst`` with ``pads`` (top, left, bottom,
    right) of ``fill`` around each, xoring 0x80 into copied bytes when ``flip``."""
    pt, pl, pb, pr = pads
    hp, wp = h + pt + pb, w + pl + pr
    with for_range(b, 0, planes, name="pc") as c:
        plane = gep(b, dst, b.mul(c, i64(hp * wp)))
        if pt or pl or pb or pr:
            with for_range(b, 0, hp * wp, name="pf") as i:
                loops.store_at(b, fill, plane, i)
        s_plane = gep(b, src, b.mul(c, i64(h * w)))
        with for_range(b, 0, h, name="py") as y:
            s_row = gep(b, s_plane, b.mul(y, i64(w)))
            d_row = gep(b, plane, b.add(b.mul(b.add(y, i64(pt)), i64(wp)), i64(pl)))
            with for_range(b, 0, w, name="px") as x:
                v = loops.load_at(b, s_row, x)
                loops.store_at(b, b.xor(v, ir.Constant(I8, 0x80)) if flip else v, d_row, x)


#: Fewest tasks of a parallel im2col copy when the rows allow it.
IM2COL_TASKS = 64


def _im2col_bands(nkq: int, oh: int) -> int:
    """Output-row bands per k group: enough ``(k group, band)`` tasks for the pool's 4
    chunks per thread to be equal for 2 and 4 threads (a multiple of 16 tasks when the
    rows allow it, at least ``IM2COL_TASKS``), each band of equal rows where possible.
    Only when the copy is big enough to run on the pool: else one band."""
    best = 1
    for bands in range(1, oh + 1):
        best = bands
        even = oh % bands == 0
        if nkq * bands >= IM2COL_TASKS and (nkq * bands) % 16 == 0 and even:
            break
    if nkq * best < IM2COL_TASKS or (nkq * best) % 16:  # no exact fit: fewest bands reaching it
        best = min(oh, -(-IM2COL_TASKS // nkq))
    return max(1, best)


def _emit_im2col(b, geo: dict, g: int, padded, panel, flip: bool = False) -> None:
    """Fill the B panel ``[kg/g][pp][g]`` from one group's zero-point padded planes: per k
    group the ``g`` taps are gathered per pixel (taps past ``kg`` repeat the last one;
    their weights are 0); ``flip`` xors 0x80 into every byte (planes read in place). The
    tasks of ``parallel_for`` are (k group, band of output rows) pairs (disjoint panel
    bytes; ``_im2col_bands``)."""
    hp, wp, oh, ow, pp = geo["hp"], geo["wp"], geo["oh"], geo["ow"], geo["pp"]
    kh_n, kw_n, kg = geo["kh"], geo["kw"], geo["kg"]
    from nnc.backends.llvm import parallel  # (read at emission: tests lower its threshold)

    (sh, sw), (dh, dw) = geo["strides"], geo["dil"]
    nkq = -(-kg // g)
    work = 2 * nkq * g * pp  # bytes read and written
    bands = _im2col_bands(nkq, oh) if work >= parallel.MIN_PARALLEL_WORK else 1
    rows = -(-oh // bands)
    bands = -(-oh // rows)

    def body(b, lo, hi, args):  # (k group, band) tasks [lo, hi) (parallel_for body)
        padded, panel = args
        with for_range(b, lo, hi, name="ikq") as task:
            kq = b.udiv(task, i64(bands)) if bands > 1 else task
            y0 = b.mul(b.urem(task, i64(bands)), i64(rows)) if bands > 1 else i64(0)
            y1 = b.add(y0, i64(rows)) if bands > 1 else i64(oh)
            y1 = b.select(b.icmp_signed("<", y1, i64(oh)), y1, i64(oh)) if bands > 1 else y1
            srcs = []
            for t in range(g):
                k = b.add(b.mul(kq, i64(g)), i64(t))
                k = b.select(b.icmp_signed("<", k, i64(kg)), k, i64(kg - 1))
                c, r = b.udiv(k, i64(kh_n * kw_n)), b.urem(k, i64(kh_n * kw_n))
                kh, kw = b.udiv(r, i64(kw_n)), b.urem(r, i64(kw_n))
                off = b.add(b.mul(c, i64(hp * wp)),
                            b.add(b.mul(kh, i64(dh * wp)), b.mul(kw, i64(dw))))  # fmt: skip
                srcs.append(gep(b, padded, off))
            dst_k = gep(b, panel, b.mul(kq, i64(pp * g)))

            def each_row(b, row):
                with for_range(b, y0, y1, name="ioh") as y:
                    s_off = b.mul(y, i64(sh * wp))
                    row(b, s_off, gep(b, dst_k, b.mul(y, i64(ow * g))))

            def generic(b, s_off, dst):
                if 4 <= ow < 48:  # LLVM vectorizes long rows itself, not short ones
                    _im2col_row_vectors(b, srcs, s_off, dst, ow, sw, g, flip,
                                        wp - (kw_n - 1) * dw)  # fmt: skip
                else:
                    _im2col_row_scalar(b, srcs, s_off, dst, ow, sw, g, flip)

            if ow < 16 or kw_n < g or dw != 1:
                each_row(b, generic)
            else:  # taps = runs of consecutive bytes of <= 2 rows: span loads, one shuffle
                k0 = b.mul(kq, i64(g))
                n1 = b.sub(i64(kw_n), b.urem(k0, i64(kw_n)))  # taps left in the first row
                full = b.icmp_unsigned("<=", b.add(k0, i64(g)), i64(kg))
                _span_cases(b, full, n1, g, each_row, generic,
                            lambda n: lambda b, s_off, dst: _im2col_row_span(
                                b, [srcs[0], srcs[n]] if n < g else [srcs[0]], n, s_off, dst,
                                ow, sw, g, flip))  # fmt: skip

    parallel_for(b, nkq * bands, [padded, panel], body, work=work, name="im2col")


def _span_cases(b, full, n1, g: int, each_row, generic, span_row) -> None:
    """Branch on the split of a k group's ``g`` taps: ``n1 >= g`` taps left in the first
    row (one span), ``n1 = 1 .. g-1`` (two spans), or a last partial group (``generic``)."""

    def split(n: int) -> None:
        if n == g:
            each_row(b, generic)
            return
        with b.if_else(b.icmp_unsigned("==", n1, i64(n))) as (yes, no):
            with yes:
                each_row(b, span_row(n))
            with no:
                split(n + 1)

    with b.if_else(full) as (ok, last):
        with ok:
            with b.if_else(b.icmp_unsigned(">=", n1, i64(g))) as (one, two):
                with one:
                    each_row(b, span_row(g))
                with two:
                    split(1)
        with last:
            each_row(b, generic)


def _im2col_row_span(b, srcs, n1: int, s_off, dst, ow: int, sw: int, g: int, flip: bool):
    """One output row of the panel when the ``g`` taps are ``n1`` consecutive bytes of
    ``srcs[0]`` then ``g - n1`` consecutive bytes of ``srcs[1]`` (the next row): per chunk
    of 16 pixels one span load per source and one byte shuffle (``vpermb``/``vpermt2b``
    where available); a last partial chunk is redone at ``ow - 16``. Loads stay inside
    the planes: a span reaching past its last needed byte starts that much earlier
    instead (still inside its row for ``srcs[0]``; the previous row's end for ``srcs[1]``)."""
    width = 16
    n_span = (width - 1) * sw + g
    span = ir.VectorType(I8, n_span)
    two = len(srcs) > 1
    lead0 = g - n1 if two else 0  # bytes loaded before the first needed one
    mask = [lead0 + p * sw + t if t < n1 else n_span + p * sw + t
            for p in range(width) for t in range(g)]  # fmt: skip
    mask = ir.Constant(ir.VectorType(I32, g * width), mask)
    flip_v = ir.Constant(ir.VectorType(I8, g * width), [0x80] * (g * width))

    def chunk(xo):
        at = b.add(s_off, b.mul(xo, i64(sw)))
        raws = [
            b.load(b.bitcast(gep(b, src, b.sub(at, i64(lead))), span.as_pointer()), align=1)
            for src, lead in zip(srcs, (lead0, n1))
        ]
        other = raws[1] if two else ir.Constant(span, ir.Undefined)
        out = b.shuffle_vector(raws[0], other, mask)
        out = b.xor(out, flip_v) if flip else out
        b.store(out, b.bitcast(gep(b, dst, b.mul(xo, i64(g))), out.type.as_pointer()), align=1)

    with for_range(b, 0, ow // width, name="isp") as ci:
        chunk(b.mul(ci, i64(width)))
    if ow % width:
        chunk(i64(ow - width))


def _im2col_row_scalar(b, srcs, s_off, dst, ow: int, sw: int, g: int, flip: bool) -> None:
    """One output row of the panel, byte by byte (narrow rows)."""
    with for_range(b, 0, ow, name="iow") as xo:
        s_idx = b.add(s_off, b.mul(xo, i64(sw)))
        d_idx = b.mul(xo, i64(g))
        for t, src in enumerate(srcs):
            v = loops.load_at(b, src, s_idx)
            v = b.xor(v, ir.Constant(I8, 0x80)) if flip else v
            loops.store_at(b, v, dst, b.add(d_idx, i64(t)))


def _im2col_row_vectors(
    b, srcs, s_off, dst, ow: int, sw: int, g: int, flip: bool, room: int = 0
) -> None:
    """One output row of the panel in chunks of ``W`` pixels (16, 8 or 4, at most ``ow``):
    per tap one (strided: wider, then shuffled) byte vector load, one interleaving shuffle
    to ``[W][g]`` and one store. A last partial chunk is redone at ``ow - W`` (the
    overlapping bytes are rewritten with the same values); loads never pass the row
    (strided chunks load a whole ``W * sw`` span, cheaper to shuffle, where that stays
    within ``room`` bytes of the row start of every tap)."""
    width = 16 if ow >= 16 else 8 if ow >= 8 else 4
    vec = ir.VectorType(I8, width)
    exact = ir.VectorType(I8, (width - 1) * sw + 1)
    wide = ir.VectorType(I8, width * sw)
    flip_v = ir.Constant(vec, [0x80] * width)

    def cat(x, y):
        n = x.type.count
        return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n))))

    def chunk(xo, span):
        s_idx = b.add(s_off, b.mul(xo, i64(sw)))
        vals = []
        for src in srcs:
            raw = b.load(b.bitcast(gep(b, src, s_idx), span.as_pointer()), align=1)
            if sw > 1:
                lanes = ir.Constant(ir.VectorType(I32, width), [i * sw for i in range(width)])
                raw = b.shuffle_vector(raw, ir.Constant(span, ir.Undefined), lanes)
            vals.append(b.xor(raw, flip_v) if flip else raw)
        while len(vals) > 1:
            vals = [cat(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
        out = vals[0]
        if g > 1:
            mask = [t * width + p for p in range(width) for t in range(g)]
            out = b.shuffle_vector(out, ir.Constant(out.type, ir.Undefined),
                                   ir.Constant(ir.VectorType(I32, g * width), mask))  # fmt: skip
        b.store(out, b.bitcast(gep(b, dst, b.mul(xo, i64(g))), out.type.as_pointer()), align=1)

    full = ow // width
    with for_range(b, 0, full, name="iow") as ci:
        chunk(b.mul(ci, i64(width)), wide if sw > 1 and full * width * sw <= room else exact)
    if ow % width:
        chunk(i64(ow - width), wide if sw > 1 and ow * sw <= room else exact)


def _emit_depthwise(b, module, name: str, d: dict, dom: ActDomain, params, w2d, x, res, out):
    """Direct depthwise conv (one input channel per group): per channel the plane is
    copied zero-point padded into scratch, then each output row is a loop over output
    columns with the taps unrolled and the epilogue fused (LLVM vectorizes it)."""
    n, c, h, wd, m, oh_n, ow_n = (d[k] for k in ("n", "c", "h", "w", "m", "oh", "ow"))
    kh_n, kw_n, mg = d["kh"], d["kw"], m // c
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = d["strides"], d["dil"], d["pads"]
    wp = wd + pl + pr
    pad = b.function.args[-1]
    wglob = b.bitcast(const_global(module, f"{name}.wdw", w2d), I8_PTR)
    bias_p, mult_p, fbias_p = param_globals(b, module, name, params, m)
    epi, ext = params.epi, (b.sext if dom.signed else b.zext)
    zp = ir.Constant(I8, dom.zp & 0xFF)
    with for_range(b, 0, n, name="img") as img, for_range(b, 0, c, name="ch") as ch:
        plane = gep(b, x, b.mul(b.add(b.mul(img, i64(c)), ch), i64(h * wd)))
        _emit_pad_planes(b, plane, pad, 1, h, wd, (pt, pl, pb, pr), zp, False)
        with for_range(b, 0, mg, name="mult") as j:
            co = b.add(b.mul(ch, i64(mg)), j)
            taps = [(t // kw_n, t % kw_n) for t in range(kh_n * kw_n)]
            w_co = gep(b, wglob, b.mul(co, i64(kh_n * kw_n)))
            wts = [b.sext(loops.load_at(b, w_co, t), I32) for t in range(len(taps))]
            bias = loops.load_at(b, bias_p, co)
            mult = loops.load_at(b, mult_p, co)
            fbias = loops.load_at(b, fbias_p, co) if epi.f_bias else None
            plane_out = b.mul(b.add(b.mul(img, i64(m)), co), i64(oh_n * ow_n))
            with for_range(b, 0, oh_n, name="oy") as oy:
                row0 = gep(b, pad, b.mul(oy, i64(sh * wp)))
                o_row = b.add(plane_out, b.mul(oy, i64(ow_n)))
                with for_range(b, 0, ow_n, name="ox") as ox:
                    base = gep(b, row0, b.mul(ox, i64(sw)))
                    acc = ir.Constant(I32, 0)
                    for (ki, kj), wt in zip(taps, wts, strict=True):
                        v = ext(loops.load_at(b, base, ki * dh * wp + kj * dw), I32)
                        acc = b.add(acc, b.mul(v, wt, flags=["nsw"]), flags=["nsw"])
                    idx = b.add(o_row, ox)
                    rv = loops.load_at(b, res, idx) if epi.r_dtype else None
                    y = emit_epilogue(b, module, epi, acc, bias, mult, fbias, rv)
                    out_t = b.bitcast(out, y.type.as_pointer())
                    loops.store_at(b, y, out_t, idx)


def emit_qconv(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    w,
    w_scale,
    x_scale: float,
    x_zp: int = 0,
    x_dtype: str = "u8",
    y_dtype: str = "u8",
    y_scale: float = 1.0,
    y_zp: int = 0,
    bias=None,
    strides: Shape = (1, 1),
    pads: Shape = (0, 0, 0, 0),
    dilations: Shape = (1, 1),
    group: int = 1,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    r_scale: float | None = None,
    r_zp: int = 0,
    r_dtype: str | None = None,
    target=None,
    implicit: bool | None = None,
) -> KernelFn:
    """Quantized NCHW conv; args ``x, [r], y, scratch``.

    ``x`` u8/i8 ``[N, C, H, W]``; ``w`` s8 ``[M, C/group, KH, KW]`` with per-output-channel
    (or scalar) ``w_scale``; ``bias`` int32 ``[M]`` (float32 allowed for f32 output);
    ``pads`` = (top, left, bottom, right). Output ``y`` ``[N, M, OH, OW]`` of ``y_dtype``
    (u8/i8 requantized, or f32 dequantized); the residual ``r`` has y's shape and dtype
    ``r_dtype``. Weights and per-channel constants are packed into globals ``name.*``.
    Numeric contract: ``requant.py``; ISA choice: ``qisa.select_qisa``. ``implicit``:
    use the implicit-GEMM path (``qconv_implicit``) where it applies (None: its
    ``qconv_implicit.preferred`` default; False: always im2col).
    """
    isa = select_qisa(target or module_target(module))
    wq = as_array(w).astype(np.int8)
    shape = ConvShape.checked(x_shape, wq.shape, strides, pads, dilations, group)
    n, c, h, wd = x_shape
    m, cg, kh, kw = wq.shape
    (sh, sw), (dh, dw) = tuple(strides), tuple(dilations)
    pt, pl, pb, pr = pads
    oh, ow = shape.oh, shape.ow
    g, mg, kg, p = isa.group, m // group, cg * kh * kw, oh * ow
    kgp, pp = ceil_to(kg, g), ceil_to(p, isa.nr)
    w2d = wq.reshape(m, kg)
    depthwise = cg == 1 and group > 1
    dom = ActDomain.of(isa, x_dtype, x_zp)
    dot_lanes = qdwd.lanes(target or module_target(module), isa, sw, ow) if depthwise else 0
    fma_dw = depthwise and not dot_lanes and kh * kw <= qdw.MAX_TAPS
    if depthwise and not dot_lanes:  # raw bytes (float FMA path: x - zp while widening)
        dom = ActDomain(False, 0 if fma_dw else int(x_zp), x_dtype == "i8")
    params = make_params(
        w2d, bias, dom, w_scale=w_scale, x_scale=x_scale, y_dtype=y_dtype, y_scale=y_scale,
        y_zp=y_zp, activation=activation, act_alpha=act_alpha, act_beta=act_beta,
        r_scale=r_scale, r_zp=r_zp, r_dtype=r_dtype,
    )  # fmt: skip
    ob = params.epi.out_bytes
    plane = (h + pt + pb) * (wd + pl + pr)
    d = dict(n=n, c=c, h=h, w=wd, m=m, oh=oh, ow=ow, kh=kh, kw=kw, strides=(sh, sw),
             dil=(dh, dw), pads=(pt, pl, pb, pr), sh=sh, sw=sw, dh=dh, dw=dw, pt=pt, pl=pl,
             pb=pb, pr=pr, x_zp=int(x_zp), x_signed=x_dtype == "i8",
             has_res=r_dtype is not None)  # fmt: skip
    width = qdw.vector_width(isa.width, ow)
    padding = any(pads)  # else im2col reads the input planes in place
    scratch = ceil_to(kgp * pp, 64) + (ceil_to(cg * plane, 64) if padding else 0)
    if depthwise:
        scratch = qdw.scratch_bytes(d, width) if fma_dw else ceil_to(plane, 64)
        scratch = qdwd.scratch_bytes(d, dot_lanes) if dot_lanes else scratch
    use_imp = not depthwise and qimp.eligible(isa, d, group)
    use_imp = use_imp and (qimp.preferred(d) if implicit is None else implicit)
    if use_imp:
        scratch = qimp.scratch_bytes(d, ob, r_dtype is not None)
    use_pix = implicit is None and qpix.eligible(isa, d, group) and qpix.preferred(d, isa)
    if use_pix:  # small output planes: pixels as rows, channels in lanes (qconv_pixrows)
        use_imp, scratch = False, qpix.scratch_bytes(d, isa, ob, r_dtype is not None)
    has_res = r_dtype is not None
    fn, b, args = loops.new_function(module, name, 2 + has_res, scratch=True)
    x = b.bitcast(args[0], I8_PTR)
    res = b.bitcast(args[1], I8_PTR) if has_res else null(I8_PTR)
    out = b.bitcast(args[1 + has_res], I8_PTR)
    if dot_lanes:  # byte-shuffle + vpdpbusd/sdot kernel, zero point folded with dom
        qdwd.emit_depthwise_dot(b, module, isa, d, dom, params, w2d, x, res, out, args[-1],
                                dot_lanes)  # fmt: skip
        b.ret_void()
        return KernelFn(fn, scratch)
    if fma_dw:
        pad = b.bitcast(args[-1], F32.as_pointer())
        qdw.emit_depthwise_rows(b, module, d, params, w2d, x, res, out, pad, width)
        b.ret_void()
        return KernelFn(fn, scratch)
    if depthwise:
        _emit_depthwise(b, module, name, d, dom, params, w2d, x, res, out)
        b.ret_void()
        return KernelFn(fn, scratch)
    if use_imp:
        qimp.emit_implicit(b, module, name, isa, d, dom, params, wq, x, res, out, args[-1])
        b.ret_void()
        return KernelFn(fn, scratch)
    if use_pix:
        qpix.emit_pixrows(b, module, name, isa, d, dom, params, wq, x, res, out, args[-1])
        b.ret_void()
        return KernelFn(fn, scratch)
    panel = args[-1]
    padded = gep(b, panel, ceil_to(kgp * pp, 64))
    wrows = b.bitcast(const_global(module, f"{name}.wpack", pad_rows(w2d, kgp)), I8_PTR)
    bias_p, mult_p, fbias_p = param_globals(b, module, name, params, m)
    geo = dict(hp=h + pt + pb, wp=wd + pl + pr, oh=oh, ow=ow, pp=pp, kh=kh, kw=kw, kg=kg,
               strides=(sh, sw), dil=(dh, dw))  # fmt: skip
    tiling = QTiling(mg, p, kgp // g, kgp, pp * g, p, False, dom.signed, True, params.epi)
    cache = QMicroCache(module, name)
    with for_range(b, 0, n, name="img") as img, for_range(b, 0, group, name="grp") as gi:
        x_grp = gep(b, x, b.mul(b.add(b.mul(img, i64(group)), gi), i64(cg * h * wd)))
        zp = ir.Constant(I8, dom.zp & 0xFF)
        if padding:
            _emit_pad_planes(b, x_grp, padded, cg, h, wd, (pt, pl, pb, pr), zp, dom.flip)
            _emit_im2col(b, geo, g, padded, panel)
        else:
            _emit_im2col(b, geo, g, x_grp, panel, dom.flip)
        ch0 = b.mul(gi, i64(mg))
        pos = b.mul(b.add(b.mul(img, i64(m)), ch0), i64(p))
        emit_tiles(
            b, cache, isa, tiling, gep(b, wrows, b.mul(ch0, i64(kgp))), panel,
            gep(b, bias_p, ch0), gep(b, mult_p, ch0),
            fbias_p if isinstance(fbias_p, ir.Constant) else gep(b, fbias_p, ch0),
            gep(b, res, pos) if has_res else res, gep(b, out, b.mul(pos, i64(ob))),
        )  # fmt: skip
    b.ret_void()
    return KernelFn(fn, scratch)
