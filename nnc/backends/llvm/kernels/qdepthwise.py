"""int8 depthwise convolution (one input channel per group), exact, on float32 vector FMAs.

Per input channel the u8/i8 plane is widened once into scratch as float32 ``x - x_zp``
with zero padding (the zero point pads, as the contract says), split into ``sw`` column
phases (phase ``p`` holds padded columns ``p, p + sw, ...``) so that every tap of a
strided conv reads a contiguous run: padded column ``ox*sw + kw*dw`` is phase
``(kw*dw) % sw``, offset ``ox + (kw*dw) // sw``. Each output row is then computed in
vectors of ``W`` columns: ``acc = sum_taps splat(w[kh, kw]) * run`` with ``fmuladd``.

Exactness: every product is an integer of magnitude <= 255 * 128 and at most
``MAX_TAPS`` of them are summed, so every partial sum is an integer below 2**24 and
float32 represents it exactly, in any order and with or without fusing; ``fptosi(acc)``
is the exact int32 accumulator of ``requant.py``'s contract, which the shared epilogue
then requantizes (bias not folded: the zero point was subtracted while widening). When
``|bias| + taps * 255 * 128 < 2**24`` the accumulator starts at ``f32(bias)`` instead
and the epilogue takes the (still exact) float sum as ``f32(acc + bias)`` directly.

Threads: tasks (``parallel.parallel_for``) are ``tasks(d)`` contiguous ranges of the
``n * c`` input planes, each with its own scratch region (``scratch_bytes`` covers all);
a plane's code does not depend on its task, so results do not depend on the thread count.

Row tails: the last chunk overlaps the previous one (``ow >= W``: the overlapped outputs
are written twice with the same value) or uses masked residual loads and stores
(``ow < W``); scratch has slack so that loads past a phase row stay in bounds.
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops, parallel
from nnc.backends.llvm.kernels.qpack import Params, ceil_to, const_global
from nnc.backends.llvm.kernels.requant import emit_epilogue, splat
from nnc.backends.llvm.loops import F32, I8, I32, VOID, for_range, gep, i64

I1 = ir.IntType(1)
#: Most tasks (scratch regions) of one depthwise conv.
MAX_TASKS = 16
#: Largest kh * kw for which float32 sums stay exact (255 * 128 * taps < 2**24).
MAX_TAPS = (1 << 24) // (255 * 128)


def vector_width(isa_width: int, ow: int) -> int:
    """Output columns per vector: the ISA's i32 lanes, halved while half still covers
    the row (narrow planes), at least 4."""
    w = max(isa_width, 4)
    while w > 4 and w // 2 >= ow:
        w //= 2
    return w


def _task_bytes(d: dict, width: int) -> int:
    """Float32 phase planes of one padded input channel plus load slack."""
    return 4 * ceil_to(_geometry(d)[2] + width + d["kw"] * d["dw"] + 16, 16)


def _work(d: dict) -> int:
    return 2 * d["n"] * d["m"] * d["oh"] * d["ow"] * d["kh"] * d["kw"]


def tasks(d: dict) -> int:
    """Tasks of the conv: 1 when it is too small for the pool, else up to ``MAX_TASKS``."""
    if _work(d) < parallel.MIN_PARALLEL_WORK:
        return 1
    return max(1, min(d["n"] * d["c"], MAX_TASKS))


def scratch_bytes(d: dict, width: int) -> int:
    """One ``_task_bytes`` region per task."""
    return tasks(d) * _task_bytes(d, width)


def _geometry(d: dict) -> tuple[int, int, int]:
    """(padded rows, columns per phase row, floats of all phase planes)."""
    hp = d["h"] + d["pt"] + d["pb"]
    wq = -(-(d["w"] + d["pl"] + d["pr"]) // d["sw"])
    return hp, wq, d["sw"] * hp * wq


def _mask(width: int, count: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I1, width), [int(i < count) for i in range(width)])


def _masked(module, b, kind: str, vec: ir.VectorType, ptr, count: int, value=None):
    """Masked load (``value`` None) or store of the first ``count`` lanes at ``ptr``."""
    ety = "f32" if vec.element == F32 else f"i{vec.element.width}"
    vptr = b.bitcast(ptr, vec.as_pointer())
    mask_t, align = ir.VectorType(I1, vec.count), ir.Constant(I32, 1)
    if kind == "load":
        fn = loops.intrinsic(module, f"llvm.masked.load.v{vec.count}{ety}.p0", vec,
                             [vec.as_pointer(), I32, mask_t, vec])  # fmt: skip
        return b.call(fn, [vptr, align, _mask(vec.count, count), ir.Constant(vec, None)])
    fn = loops.intrinsic(module, f"llvm.masked.store.v{vec.count}{ety}.p0", VOID,
                         [vec, vec.as_pointer(), I32, mask_t])  # fmt: skip
    b.call(fn, [value, vptr, align, _mask(vec.count, count)])
    return None


def _widen_plane(b, d: dict, src, dst, zp: int, signed: bool, width: int) -> None:
    """``dst`` phase planes <- float32(x - zp) of one ``[h, w]`` byte plane, 0 in the pads.

    Per padded row, blocks of ``width`` phase columns whose ``sw * width`` input bytes
    are all inside the row are one vector load split into the phases by shuffles; the
    columns left over on either side go one by one."""
    hp, wq, _ = _geometry(d)
    h, w, s, pt, pl = d["h"], d["w"], d["sw"], d["pt"], d["pl"]
    zero, zpc = ir.Constant(F32, 0.0), ir.Constant(I32, zp)
    ext = b.sext if signed else b.zext
    phases = [gep(b, dst, p * hp * wq) for p in range(s)]
    vin, vi32 = ir.VectorType(I8, s * width), ir.VectorType(I32, width)
    zpv = splat(b, zpc, width)
    # Vector blocks: q0 in [qa, qb) with 0 <= q0*s - pl and q0*s - pl + s*width <= w.
    qa = -(-pl // s)
    n_blocks = max(0, (w + pl - s * width) // s - qa + 1) // width

    def widen_one(row_in, rows_out, q, p):
        v = b.sub(ext(loops.load_at(b, row_in, b.add(b.mul(q, i64(s)), i64(p - pl))), I32), zpc)
        loops.store_at(b, b.sitofp(v, F32), rows_out[p], q)

    for y in [*range(pt), *range(pt + h, hp)]:  # pad rows
        for phase in phases:
            with for_range(b, 0, wq, name="zr") as q:
                loops.store_at(b, zero, phase, b.add(q, i64(y * wq)))
    with for_range(b, 0, h, name="wy") as y:
        row_in = gep(b, src, b.mul(y, i64(w)))
        off = b.mul(b.add(y, i64(pt)), i64(wq))
        rows_out = [gep(b, ph, off) for ph in phases]
        qb = qa + n_blocks * width
        if n_blocks:
            with for_range(b, 0, n_blocks, name="wb") as blk:
                q0 = b.add(b.mul(blk, i64(width)), i64(qa))
                raw = b.load(b.bitcast(gep(b, row_in, b.sub(b.mul(q0, i64(s)), i64(pl))),
                                       vin.as_pointer()), align=1)  # fmt: skip
                for p in range(s):
                    lanes = ir.Constant(vi32, [p + s * i for i in range(width)])
                    v = b.shuffle_vector(raw, ir.Constant(vin, ir.Undefined), lanes)
                    f = b.sitofp(b.sub(ext(v, vi32), zpv), ir.VectorType(F32, width))
                    b.store(f, b.bitcast(gep(b, rows_out[p], q0), f.type.as_pointer()), align=4)
        for p in range(s):
            inside = [q for q in range(wq) if pl <= q * s + p < pl + w]
            q_lo, q_hi = (inside[0], inside[-1] + 1) if inside else (0, 0)
            for q in [q for q in range(wq) if not q_lo <= q < q_hi]:
                loops.store_at(b, zero, rows_out[p], q)
            for lo, hi in [(q_lo, qa), (qb, q_hi)] if n_blocks else [(q_lo, q_hi)]:
                if hi > lo:
                    with for_range(b, lo, hi, name="wq") as q:
                        widen_one(row_in, rows_out, q, p)


def emit_depthwise_rows(b, module, d: dict, params: Params, w2d, x, res, out, pad, width: int):
    """The depthwise conv body (see module docstring): args as ``qconv._emit_depthwise``
    with ``pad`` the float32 scratch; ``params`` folded with a zero point of 0."""
    n, c, m, oh, ow = d["n"], d["c"], d["m"], d["oh"], d["ow"]
    kh_n, kw_n, sh, sw, dh, dw = d["kh"], d["kw"], d["sh"], d["sw"], d["dh"], d["dw"]
    mg, epi = m // c, params.epi
    hp, wq, _ = _geometry(d)
    vec, ivec = ir.VectorType(F32, width), ir.VectorType(I32, width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{width}f32", vec, [vec] * 3)
    name = b.function.name
    f32p = F32.as_pointer()
    wglob = ir.Constant.bitcast(const_global(module, f"{name}.wdwf", w2d.astype("float32")), f32p)
    bias_g = ir.Constant.bitcast(
        const_global(module, f"{name}.bias", params.bias), I32.as_pointer()
    )
    mult_g = ir.Constant.bitcast(const_global(module, f"{name}.mult", params.mult), f32p)
    fb_g = None
    if params.fbias is not None:
        fb_g = ir.Constant.bitcast(const_global(module, f"{name}.fbias", params.fbias), f32p)
    ob = epi.out_bytes
    oty = ir.VectorType(F32 if ob == 4 else I8, width)
    taps = [(i, j) for i in range(kh_n) for j in range(kw_n)]
    max_bias = int(abs(params.bias.astype("int64")).max()) if params.bias.size else 0
    bias_in_acc = max_bias + len(taps) * 255 * 128 < 1 << 24
    ntasks, per_task = tasks(d), _task_bytes(d, width) // 4
    caps = [v for v in (x, res, out, pad) if not isinstance(v, ir.Constant)]

    def body(b, lo, hi, args):
        it = iter(args)
        xa, ra, oa, pa = (v if isinstance(v, ir.Constant) else next(it) for v in (x, res, out, pad))
        with for_range(b, lo, hi, name="task") as t:
            p0 = b.udiv(b.mul(t, i64(n * c)), i64(ntasks))
            p1 = b.udiv(b.mul(b.add(t, i64(1)), i64(n * c)), i64(ntasks))
            pad_t = gep(b, pa, b.mul(t, i64(per_task)))
            with for_range(b, p0, p1, name="plane") as pi:
                img, ch = b.udiv(pi, i64(c)), b.urem(pi, i64(c))
                one_plane(b, img, ch, xa, ra, b.bitcast(oa, oty.element.as_pointer()), pad_t)

    def one_plane(b, img, ch, x, res, out_t, pad):
        plane = gep(b, x, b.mul(b.add(b.mul(img, i64(c)), ch), i64(d["h"] * d["w"])))
        _widen_plane(b, d, plane, pad, d["x_zp"], d["x_signed"], width)
        with for_range(b, 0, mg, name="mult") as j:
            co = b.add(b.mul(ch, i64(mg)), j)
            w_co = gep(b, wglob, b.mul(co, i64(kh_n * kw_n)))
            wts = [splat(b, loops.load_at(b, w_co, t), width) for t in range(len(taps))]
            bias = splat(b, loops.load_at(b, bias_g, co), width)
            acc0 = ir.Constant(vec, None)
            if bias_in_acc:  # start from f32(bias): the sums stay exact integers
                acc0 = b.sitofp(bias, vec)
            mult = splat(b, loops.load_at(b, mult_g, co), width)
            fbias = splat(b, loops.load_at(b, fb_g, co), width) if fb_g is not None else None
            plane_out = b.mul(b.add(b.mul(img, i64(m)), co), i64(oh * ow))
            with for_range(b, 0, oh, name="oy") as oy:
                rows = {}
                for ki, kj in taps:
                    ph, off = (kj * dw) % sw, (kj * dw) // sw
                    r = b.add(b.mul(oy, i64(sh)), i64(ki * dh))
                    rows[ki, kj] = gep(b, pad, b.add(b.mul(r, i64(wq)), i64(ph * hp * wq + off)))
                o_row = b.add(plane_out, b.mul(oy, i64(ow)))

                def chunk(q0, count):
                    acc = acc0
                    for t, tap in enumerate(taps):
                        run = b.load(b.bitcast(gep(b, rows[tap], q0), vec.as_pointer()), align=4)
                        acc = b.call(fma, [wts[t], run, acc])
                    idx = b.add(o_row, q0)
                    rv = None
                    if epi.r_dtype:
                        rptr = gep(b, res, idx)
                        rvec = ir.VectorType(I8, width)
                        rv = (b.load(b.bitcast(rptr, rvec.as_pointer()), align=1)
                              if count == width else
                              _masked(module, b, "load", rvec, rptr, count))  # fmt: skip
                    iacc = acc if bias_in_acc else b.fptosi(acc, ivec)
                    y = emit_epilogue(b, module, epi, iacc, bias, mult, fbias, rv)
                    optr = gep(b, out_t, idx)
                    if count == width:
                        b.store(y, b.bitcast(optr, oty.as_pointer()), align=1)
                    else:
                        _masked(module, b, "store", oty, optr, count, y)

                full = ow // width
                if full:
                    with for_range(b, 0, full, name="q") as qi:
                        chunk(b.mul(qi, i64(width)), width)
                if ow % width:
                    if full:
                        chunk(i64(ow - width), width)  # overlaps the last full chunk
                    else:
                        chunk(i64(0), ow)

    parallel.parallel_for(b, ntasks, caps, body, work=_work(d), name="dw")
