"""Weight-only Gemm/MatMul with dequant-in-GEMM (``nn.wq_gemm``, ``act_quant = "none"``).

``y[m, n] = act(sum_k x[m, k] * W[n, k] + bias[n] + residual[m, n])``; ``W`` is decoded
from the ``wq16`` buffer (``wq_pack.py``) tile by tile, never as a whole. Output columns
are cut into tiles of ``tb`` 16-channel blocks (``tb * 16`` = the fp32 micro-kernel's
column width where it is a multiple of 16; 16 otherwise); the tiles are the
``parallel_for`` tasks. Two strategies:

* few rows (``M`` at most two register row blocks, e.g. batch 1..8): decode in
  registers. Per scale group the tile's scale (and zero-point) vectors are loaded once;
  per ``k`` the tile's codes are decoded (``wq_decode.decode_row``) and multiplied into
  ``rows x tb*16/width`` accumulators (``llvm.fmuladd``). The weights are read once, in
  their compressed size: gemv-like layers are bandwidth bound, so they get faster.
* many rows: per K-block (``KC`` rows, aligned to the scale groups) the tile's B panel
  ``[KC][tb*16]`` f32 is decoded into a per-task scratch panel (L1/L2 resident) and fed
  to the fp32 micro-kernel of ``gemm.py`` (``MicroSpec``/``MicroCache``) per row block;
  its ``mr x nr`` result lands in a staging tile that is stored (first K-block) or added
  to the output; a final pass adds bias / residual and applies the activation.

Rows of ``x`` are read ``ldx`` floats apart: with several rows, ``x`` is first copied
into scratch with a padded row pitch (``padded_ld``) so the rows the micro-kernels
broadcast from do not all map to the same L1 sets (a ``K`` that is a multiple of 1024
would alias them, e.g. K = 4096 or the 4608 of a 512-channel 3x3 conv).

The decode is exact (the contract of ``nnc/ir/ops_quant.py``), so results are the float
Gemm on the decoded weight up to float summation order (the fp32 kernels' tolerance).
Args: ``x, w_wq16, [bias], [residual], out[, scratch]``.
"""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.gemm import MicroCache, MicroSpec, tile_shape
from nnc.backends.llvm.kernels.simd import (
    load_lanes,
    splat,
    store_lanes,
    vec_type,
    vector_activation,
)
from nnc.backends.llvm.kernels.wq_decode import GroupParams, decode_row, row_ptr, split
from nnc.backends.llvm.kernels.wq_pack import BLOCK, WQLayout
from nnc.backends.llvm.loops import F32, I8_PTR, I64, VOID, for_range, gep, i64, load_at
from nnc.backends.llvm.parallel import parallel_for

F32P = F32.as_pointer()
#: Reduction rows per decoded panel (rounded to whole scale groups).
KC = 256
#: At most this many tasks (each owns one panel of scratch) on the panel path.
MAX_TASKS = 32


class WQTile:
    """Register tile of the weight-only kernels for ``module``'s target."""

    def __init__(self, module: ir.Module):
        t = tile_shape(module)
        self.width = min(t.width, BLOCK)
        self.blocks = max(1, t.nr // BLOCK) if t.nr % BLOCK == 0 else 1
        nvec = self.blocks * BLOCK // self.width
        self.mr = max(1, t.mr * t.nrv // nvec)


def store_tile(b, module, vals, out, ldc: int, valid: int, bias, res, act) -> None:
    """Rows of ``vals`` (``[rows][vec]``) + bias + residual, activated, into ``out``
    (row ``r`` at ``out + r*ldc``); only the first ``valid`` columns are stored."""
    for r, row in enumerate(vals):
        for v, val in enumerate(row):
            w = val.type.count
            cnt = min(w, valid - v * w)
            if cnt <= 0:
                break
            if bias is not None:
                val = b.fadd(val, load_lanes(b, module, val.type, gep(b, bias, v * w), cnt))
            if res is not None:
                rp = gep(b, res, r * ldc + v * w)
                val = b.fadd(val, load_lanes(b, module, val.type, rp, cnt))
            val = vector_activation(b, module, val, *act)
            store_lanes(b, module, val, gep(b, out, r * ldc + v * w), cnt)


def _tile_fn(module, fname, params: list[ir.Type]) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(module, ir.FunctionType(VOID, params), fname)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    for a in fn.args:
        if isinstance(a.type, ir.PointerType):
            a.add_attribute("noalias")
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def group_loops(b, lay: WQLayout, body) -> None:
    """``body(g, k0, count)`` per scale group (runtime loop over full groups, then the
    partial last group; one group of ``K`` rows when per-channel)."""
    gs = lay.group_size
    if not gs:
        body(i64(0), i64(0), lay.k)
        return
    full, tail = divmod(lay.k, gs)
    if full:
        with for_range(b, 0, full, name="grp") as g:
            body(g, b.mul(g, i64(gs)), gs)
    if tail:
        body(i64(full), i64(full * gs), tail)


def padded_ld(k: int) -> int:
    """A row pitch >= ``k`` floats whose byte size is an odd number of 64-byte lines."""
    lines = -(-k // 16)
    return 16 * (lines + (lines % 2 == 0))


def _emit_fused(module, fname, lay: WQLayout, tile: WQTile, rows, nblk, valid, epi, ldx):
    """``void f(x, w, bias, res, out, i64 blk0)``: ``rows`` rows by ``nblk`` blocks
    decoded in registers (bias/res may be null; pointers at the tile's origin)."""
    fn, b = _tile_fn(module, fname, [F32P, I8_PTR, F32P, F32P, F32P, I64])
    x, wp, bias, res, out, blk0 = fn.args
    vec = vec_type(tile.width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{tile.width}f32", vec, [vec] * 3)
    nvec = nblk * BLOCK // tile.width
    accs = [[b.alloca(vec) for _ in range(nvec)] for _ in range(rows)]
    for row in accs:
        for slot in row:
            b.store(ir.Constant(vec, None), slot)
    gp = GroupParams(b, lay, wp)
    blks = [b.add(blk0, i64(t)) for t in range(nblk)]

    def body(g, k0, count):
        params = [gp.at(b, blk, g) for blk in blks]
        with for_range(b, 0, count, name="k") as kk:
            k = b.add(k0, kk)
            wv = []
            for blk, (sv, zv) in zip(blks, params, strict=True):
                wv += split(b, decode_row(b, lay.storage, row_ptr(b, lay, wp, blk, k), sv, zv),
                            tile.width)  # fmt: skip
            for r in range(rows):
                a = splat(b, load_at(b, x, b.add(k, i64(r * ldx))), vec)
                for v in range(nvec):
                    b.store(b.call(fma, [a, wv[v], b.load(accs[r][v])]), accs[r][v])

    group_loops(b, lay, body)
    vals = [[b.load(s) for s in row] for row in accs]
    store_tile(b, module, vals, out, lay.n, valid, None if epi["no_bias"] else bias,
               None if epi["no_res"] else res, epi["act"])  # fmt: skip
    b.ret_void()
    return fn


def _kc(lay: WQLayout) -> int:
    gs = lay.group_size
    return min(lay.k, gs * max(1, KC // gs) if gs else KC)


def _emit_panel(module, fname, cache, lay: WQLayout, tile: WQTile, m, nblk, valid, epi, ldx):
    """``void f(x, w, bias, res, out, i64 blk0, panel, stage)``: all ``m`` rows of one
    tile through decoded K-block panels and the fp32 micro-kernel (module docstring)."""
    fn, b = _tile_fn(module, fname, [F32P, I8_PTR, F32P, F32P, F32P, I64, F32P, F32P])
    x, wp, bias, res, out, blk0, panel, stage = fn.args
    nr, w = nblk * BLOCK, tile.width
    vec = vec_type(w)
    nvec = nr // w
    gp = GroupParams(b, lay, wp)
    kc = _kc(lay)
    gs = lay.group_size

    def k_block(k0, kcount: int, first) -> None:
        with for_range(b, 0, kcount, name="pk") as kk:
            k = b.add(k0, kk)
            g = b.udiv(k, i64(gs)) if gs else i64(0)
            for t in range(nblk):
                blk = b.add(blk0, i64(t))
                v = decode_row(b, lay.storage, row_ptr(b, lay, wp, blk, k), *gp.at(b, blk, g))
                dst = b.bitcast(gep(b, panel, b.add(b.mul(kk, i64(nr)), i64(t * BLOCK))),
                                v.type.as_pointer())  # fmt: skip
                b.store(v, dst, align=4)
        unroll = 4 if kcount % 4 == 0 else 1
        mfull, mtail = divmod(m, tile.mr)
        for rows, start, count in ((tile.mr, 0, mfull), (mtail, mfull * tile.mr, int(mtail > 0))):
            if not count:
                continue
            spec = MicroSpec(rows, nvec, w, ldx, kcount // unroll, unroll, unroll * nr,
                             tuple((i, i * nr) for i in range(unroll)), nr)  # fmt: skip
            micro = cache.get(spec)
            with for_range(b, 0, count, name="mb") as mb:
                m0 = b.add(b.mul(mb, i64(tile.mr)), i64(start))
                b.call(micro, [gep(b, x, b.add(b.mul(m0, i64(ldx)), k0)), panel, stage])
                for r in range(rows):
                    orow = gep(b, out, b.mul(b.add(m0, i64(r)), i64(lay.n)))
                    for v in range(nvec):
                        cnt = min(w, valid - v * w)
                        if cnt <= 0:
                            break
                        sv = b.load(b.bitcast(gep(b, stage, r * nr + v * w), vec.as_pointer()),
                                    align=4)  # fmt: skip
                        op = gep(b, orow, v * w)
                        old = load_lanes(b, module, vec, op, cnt)
                        store_lanes(b, module, b.select(first, sv, b.fadd(old, sv)), op, cnt)

    nkb, ktail = divmod(lay.k, kc)
    if nkb:
        with for_range(b, 0, nkb, name="kb") as kb:
            k_block(b.mul(kb, i64(kc)), kc, b.icmp_signed("==", kb, i64(0)))
    if ktail:
        k_block(i64(nkb * kc), ktail, ir.Constant(ir.IntType(1), int(nkb == 0)))
    if not (epi["no_bias"] and epi["no_res"] and epi["act"][0] == "none"):
        with for_range(b, 0, m, name="em") as r:
            orow = gep(b, out, b.mul(r, i64(lay.n)))
            rrow = None if epi["no_res"] else gep(b, res, b.mul(r, i64(lay.n)))
            vals = [[load_lanes(b, module, vec, gep(b, orow, v * w), min(w, valid - v * w))
                     for v in range(-(-valid // w))]]  # fmt: skip
            store_tile(b, module, vals, orow, lay.n, valid, None if epi["no_bias"] else bias,
                       rrow, epi["act"])  # fmt: skip
    b.ret_void()
    return fn


def emit_wq_gemm(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w_shape,
    storage: str,
    group_size: int,
    has_zp: bool,
    has_bias: bool,
    has_residual: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
    w_layout: str = "wq16",
    x_ld: int = 0,
) -> KernelFn:
    """``y = act(x @ W^T + bias + residual)`` with ``W`` decoded per tile from the ``wq16``
    buffer (module docstring); ``x (..., K)``, output ``(..., N)``. ``x_ld`` > 0: the
    caller's ``x`` rows are already ``x_ld`` floats apart (no copy)."""
    if w_layout != "wq16":
        raise ValueError(f"wq_gemm reads the wq16 layout, got {w_layout!r}")
    n, k = int(w_shape[0]), int(math.prod(w_shape[1:]))
    lay = WQLayout(storage, n, k, group_size, has_zp)
    m = int(math.prod(x_shape[:-1]))
    tile = WQTile(module)
    epi = dict(no_bias=not has_bias, no_res=not has_residual,
               act=(activation, act_alpha, act_beta))  # fmt: skip
    tcols = tile.blocks * BLOCK
    ntiles = -(-n // tcols) if m and n and k else 0
    tail_blk = lay.blocks - (ntiles - 1) * tile.blocks if ntiles else 0
    tail_valid = n - (ntiles - 1) * tcols if ntiles else 0
    fused = ntiles and -(-m // tile.mr) <= 2
    kc = _kc(lay) if k else 0
    per_task = (kc * tcols + tile.mr * tcols) * 4
    ntasks = min(ntiles, MAX_TASKS)
    scratch = 0 if fused or not ntiles else ntasks * per_task
    ldx = x_ld or (padded_ld(k) if m > 1 and ntiles else k)
    copy_bytes = 0 if x_ld or ldx == k else -(-m * ldx * 4 // 64) * 64
    scratch += copy_bytes
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=scratch > 0)
    x, out = args[0], args[n_args - 1]
    if copy_bytes:  # rows at the padded pitch (module docstring)
        xc = b.bitcast(args[-1], F32P)
        with for_range(b, 0, m, name="xr") as r, for_range(b, 0, k, name="xk") as j:
            v = load_at(b, x, b.add(b.mul(r, i64(k)), j))
            loops.store_at(b, v, xc, b.add(b.mul(r, i64(ldx)), j))
        x = xc
    wp = b.bitcast(args[1], I8_PTR)
    null = ir.Constant(F32P, None)
    bias = args[2] if has_bias else null
    res = args[2 + has_bias] if has_residual else null
    if not ntiles:
        if m and n:  # K = 0: y = act(bias + residual)
            with for_range(b, 0, m, name="r") as r, for_range(b, 0, n, name="c") as c:
                v = loops.f32(0.0)
                if has_bias:
                    v = b.fadd(v, load_at(b, bias, c))
                idx = b.add(b.mul(r, i64(n)), c)
                if has_residual:
                    v = b.fadd(v, load_at(b, res, idx))
                from nnc.backends.llvm.kernels.activation import emit_activation

                loops.store_at(b, emit_activation(b, module, v, activation, act_alpha, act_beta),
                               out, idx)  # fmt: skip
        b.ret_void()
        return KernelFn(fn, scratch)
    variants = {}
    cache = MicroCache(module, name)

    def tile_fn(nblk: int, valid: int, rows: int) -> ir.Function:
        key = (nblk, valid, rows)
        if key not in variants:
            fname = f"{name}.tile{len(variants)}"
            if fused:
                variants[key] = _emit_fused(module, fname, lay, tile, rows, nblk, valid, epi, ldx)
            else:
                variants[key] = _emit_panel(module, fname, cache, lay, tile, m, nblk, valid,
                                            epi, ldx)  # fmt: skip
        return variants[key]

    def call_tile(bb, t, a, panel=None, stage=None) -> None:
        """Tile ``t`` (runtime index) with captures ``a = [x, w, bias, res, out, scratch]``."""
        xa, wa, ba, ra, oa = a[:5]
        n0 = bb.mul(t, i64(tcols))
        blk0 = bb.mul(t, i64(tile.blocks))
        is_tail = bb.icmp_signed("==", t, i64(ntiles - 1))

        def calls(nblk, valid):
            bias_t = ba if not has_bias else gep(bb, ba, n0)
            if fused:
                for r0 in range(0, m, tile.mr):
                    rows = min(tile.mr, m - r0)
                    o = bb.add(n0, i64(r0 * n))
                    res_t = gep(bb, ra, o) if has_residual else ra
                    bb.call(
                        tile_fn(nblk, valid, rows),
                        [gep(bb, xa, r0 * ldx), wa, bias_t, res_t, gep(bb, oa, o), blk0],
                    )
            else:
                res_t = gep(bb, ra, n0) if has_residual else ra
                bb.call(
                    tile_fn(nblk, valid, m),
                    [xa, wa, bias_t, res_t, gep(bb, oa, n0), blk0, panel, stage],
                )

        full_valid = tcols
        if tail_valid == full_valid and tail_blk == tile.blocks:
            calls(tile.blocks, full_valid)
            return
        with bb.if_else(is_tail) as (then, other):
            with then:
                calls(tail_blk, tail_valid)
            with other:
                calls(tile.blocks, full_valid)

    work = 2 * m * n * k
    caps = [x, wp, bias if has_bias else x, res if has_residual else x, out]
    if fused:

        def tiles(bb, lo, hi, a) -> None:
            a = list(a)
            a[2] = a[2] if has_bias else null
            a[3] = a[3] if has_residual else null
            with for_range(bb, lo, hi, name="tile") as t:
                call_tile(bb, t, a)

        parallel_for(b, ntiles, caps, tiles, work=work)
    else:
        caps.append(args[-1])

        def tasks(bb, lo, hi, a) -> None:
            a = list(a)
            a[2] = a[2] if has_bias else null
            a[3] = a[3] if has_residual else null
            with for_range(bb, lo, hi, name="task") as ti:
                base = bb.gep(
                    a[5], [bb.add(bb.mul(ti, i64(per_task)), i64(copy_bytes))], inbounds=True
                )
                panel = bb.bitcast(base, F32P)
                stage = bb.bitcast(bb.gep(base, [i64(kc * tcols * 4)], inbounds=True), F32P)
                t0 = bb.udiv(bb.mul(ti, i64(ntiles)), i64(ntasks))
                t1 = bb.udiv(bb.mul(bb.add(ti, i64(1)), i64(ntiles)), i64(ntasks))
                with for_range(bb, t0, t1, name="tile") as t:
                    call_tile(bb, t, a, panel, stage)

        parallel_for(b, ntasks, caps, tasks, work=work)
    b.ret_void()
    return KernelFn(fn, scratch)
