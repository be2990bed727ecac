"""int8 GEMM: a register-blocked u8/s8 x s8 -> i32 micro-kernel with a fused requant epilogue.

``C[i, j] = sum_k A[i, k] * B[k, j]`` over a tile of ``mr`` rows by ``nrv`` vectors of
``width`` i32 lanes (see ``qisa``). A is read as rows of bytes (``a_row`` bytes apart),
and per k group of ``g`` bytes one row value is broadcast. B is a packed panel
``[k / g][columns][g]`` (``b_kq`` bytes between k groups): lane ``j`` of a vector holds the
``g`` consecutive k values of column ``j``, as ``vpdpbusd``/``sdot`` (g = 4) and
``vpmaddwd`` (g = 2) consume them. One operand is the activations, the other the s8
weights: for Gemm the activations are A (rows = batch rows, per-channel params along
columns), for conv they are B (im2col of the image, columns = pixels, per-channel params
along rows). The epilogue (``requant``) adds the folded bias, scales, adds the residual,
rounds, clamps and stores each row of the tile contiguously (``ldc`` elements apart);
partial column tiles store lane by lane. The numeric contract is in ``requant.py``.
Gemm's constant weights are packed per column tile, ``[N / nr][k / g][nr][g]``
(``QTiling.b_col``): a tile streams one contiguous block (the weights come from L3 or
DRAM when a model's weights outgrow L2: 1x512x1000 measured 28 -> 19 us cold).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.qisa import QIsa, module_target, select_qisa
from nnc.backends.llvm.kernels.qpack import (
    ActDomain,
    as_array,
    ceil_to,
    const_global,
    make_params,
    null,
    pack_panel,
    param_globals,
)
from nnc.backends.llvm.kernels.requant import (
    EPI_ARG_TYPES,
    Epilogue,
    emit_epilogue,
    epilogue_args,
    epilogue_key,
    epilogue_values,
    splat,
)
from nnc.backends.llvm.loops import F32, I8, I32, I64, for_range, gep, i64
from nnc.backends.llvm.parallel import parallel_blocks, parallel_for

I16 = ir.IntType(16)
I8_PTR = I8.as_pointer()
#: Tasks a tile loop is cut into when it has that many tiles: a multiple of 8, 12, 16 and
#: 32, so the pool's ``min(n, 4 * threads)`` equal chunks of tasks are balanced for 2, 3, 4
#: and 8 threads (tasks have equal estimated costs, see ``emit_tiles``).
TASKS = 96
#: Fewest row blocks for which ``emit_tiles`` runs ``RowHooks`` inside row-owning tile
#: tasks (fewer: separate parallel passes, so that the tiles still split over the pool).
HOOK_ROW_BLOCKS = 8
Shape = tuple[int, ...]


# -- micro-kernel ------------------------------------------------------------------------


@dataclass(frozen=True)
class QMicro:
    """One micro-kernel ``void f(i8* a, i8* b, i32* bias, f32* mult, f32* fbias, i8* res,
    i8* out, i64 kq, i64 a_row, i64 b_kq, i64 ldc, <epilogue_args>)``: ``mr`` rows,
    ``ncols`` valid columns, ``kq`` k groups (a multiple of ``unroll``; see module doc).
    ``row_chan`` indexes the per-channel arrays by row (else by column). Sizes, strides
    and the epilogue's numbers are run-time arguments, so one function serves every
    layer with the same tile shape and epilogue kind (``epi`` is an ``epilogue_key``).

    ``taps`` (implicit-GEMM conv, ``qconv_implicit``): when set, each of the ``kq`` loop
    steps consumes ``len(taps)`` k groups, the ``t``-th read from B at byte offset
    ``taps[t]`` of the step (steps are ``b_kq`` bytes apart; ``unroll`` is then 1)."""

    isa: QIsa
    mr: int
    ncols: int
    unroll: int
    act_is_a: bool
    act_signed: bool
    row_chan: bool
    epi: Epilogue
    taps: tuple[int, ...] = ()


def _ptr(b, base, offset, ty):
    return b.bitcast(gep(b, base, offset), ty.as_pointer())


def _ext(b, v, ty, signed):
    return b.sext(v, ty) if signed else b.zext(v, ty)


def _intr(module, name, ret, args):
    return loops.intrinsic(module, name, ret, args)


class _Dot:
    """Operand loads and the multiply-accumulate step of one ISA flavour."""

    def __init__(self, module, spec: QMicro):
        self.m, self.s, isa = module, spec, spec.isa
        self.w, self.g = isa.width, isa.group
        self.vec = ir.VectorType(I32, self.w)
        self.a_signed = spec.act_signed if spec.act_is_a else True
        self.b_signed = True if spec.act_is_a else spec.act_signed

    def a(self, b, ptr):
        """Broadcast the ``g`` bytes at ``ptr`` (one row, one k group)."""
        name, w = self.s.isa.name, self.w
        if self.g == 4:
            v = splat(b, b.load(_ptr(b, ptr, 0, I32), align=1), w)
            return v if name.startswith("vnni") else b.bitcast(v, ir.VectorType(I8, 4 * w))
        if self.g == 2:
            pair = b.bitcast(b.load(_ptr(b, ptr, 0, I16), align=1), ir.VectorType(I8, 2))
            word = b.bitcast(_ext(b, pair, ir.VectorType(I16, 2), self.a_signed), I32)
            return b.bitcast(splat(b, word, w), ir.VectorType(I16, 2 * w))
        return splat(b, _ext(b, b.load(ptr), I32, self.a_signed), w)

    def b(self, b, ptr):
        """The vector of ``width`` columns x ``g`` k values at ``ptr``."""
        w, g = self.w, self.g
        if g == 4:
            ty = self.vec if self.s.isa.name.startswith("vnni") else ir.VectorType(I8, 4 * w)
            return b.load(_ptr(b, ptr, 0, ty), align=1)
        raw = b.load(_ptr(b, ptr, 0, ir.VectorType(I8, g * w)), align=1)
        return _ext(b, raw, ir.VectorType(I16 if g == 2 else I32, g * w), self.b_signed)

    def step(self, b, acc, av, bv):
        """``acc += dot(av, bv)`` per lane."""
        name, vec, w = self.s.isa.name, self.vec, self.w
        if name.startswith("vnni"):
            fn = _intr(self.m, f"llvm.x86.avx512.vpdpbusd.{32 * w}", vec, [vec] * 3)
            act, wgt = (av, bv) if self.s.act_is_a else (bv, av)
            return b.call(fn, [acc, act, wgt])
        if name == "sdot":
            v8 = ir.VectorType(I8, 4 * w)
            fn = _intr(self.m, f"llvm.aarch64.neon.sdot.v{w}i32.v{4 * w}i8", vec, [vec, v8, v8])
            return b.call(fn, [acc, av, bv])
        if self.g == 2:
            v16 = ir.VectorType(I16, 2 * w)
            iname = "llvm.x86.avx512.pmaddw.d.512" if w == 16 else "llvm.x86.avx2.pmadd.wd"
            return b.add(acc, b.call(_intr(self.m, iname, vec, [v16, v16]), [av, bv]))
        return b.add(acc, b.mul(av, bv, flags=["nsw"]))


def _emit_micro(module: ir.Module, fname: str, spec: QMicro) -> ir.Function:
    f32p, i32p = F32.as_pointer(), I32.as_pointer()
    ptrs = [I8_PTR, I8_PTR, i32p, f32p, f32p, I8_PTR, I8_PTR]
    fty = ir.FunctionType(loops.VOID, [*ptrs, *[I64] * 4, *EPI_ARG_TYPES])
    fn = ir.Function(module, fty, name=fname)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    for arg in fn.args[: len(ptrs)]:
        arg.add_attribute("noalias")
    a, bp, bias, mult, fbias, res, out = fn.args[: len(ptrs)]
    kq, a_row, b_kq, ldc = fn.args[len(ptrs) : len(ptrs) + 4]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    dot, w, g, unroll = _Dot(module, spec), spec.isa.width, spec.isa.group, spec.unroll
    nrv = -(-spec.ncols // w)
    accs = [[b.alloca(dot.vec) for _ in range(nrv)] for _ in range(spec.mr)]
    for r, row in enumerate(accs):  # start from the folded bias (the epilogue adds 0)
        for v, slot in enumerate(row):
            if spec.row_chan:
                init = splat(b, loops.load_at(b, bias, r), w)
            else:
                init = b.load(_ptr(b, bias, v * w, ir.VectorType(I32, w)), align=4)
            b.store(init, slot)
    a_rows = [gep(b, a, b.mul(a_row, i64(r))) for r in range(spec.mr)]
    per = len(spec.taps) or unroll
    b_step = b_kq if spec.taps else b.mul(b_kq, i64(unroll))
    steps = kq if spec.taps else b.sdiv(kq, i64(unroll))
    with for_range(b, 0, steps, name="k") as o:
        b_o = gep(b, bp, b.mul(o, b_step))
        a_off = b.mul(o, i64(per * g))
        vals = [[b.load(s) for s in row] for row in accs]
        for u in range(per):
            if spec.taps:
                b_u = gep(b, b_o, i64(spec.taps[u])) if spec.taps[u] else b_o
            else:
                b_u = gep(b, b_o, b.mul(b_kq, i64(u))) if u else b_o
            bv = [dot.b(b, gep(b, b_u, v * w * g)) for v in range(nrv)]
            for r in range(spec.mr):
                av = dot.a(b, gep(b, a_rows[r], b.add(a_off, i64(u * g))))
                vals[r] = [dot.step(b, vals[r][v], av, bv[v]) for v in range(nrv)]
        for row, vrow in zip(accs, vals, strict=True):
            for slot, val in zip(row, vrow, strict=True):
                b.store(val, slot)
    epi_vals = epilogue_values(b, spec.epi, fn.args[len(ptrs) + 4 :], w)
    _emit_store(b, module, spec, accs, bias, mult, fbias, res, out, ldc, epi_vals)
    b.ret_void()
    return fn


def _vec_or_lanes(b, base, offset: int, ty: ir.Type, n: int, valid: int) -> ir.Value:
    """Load ``n`` elements at ``base + offset`` (only ``valid`` of them when partial)."""
    vty = ir.VectorType(ty, n)
    if valid == n:
        return b.load(_ptr(b, base, offset, vty), align=1)
    v = ir.Constant(vty, None)
    for lane in range(valid):
        at = b.add(offset, i64(lane)) if lane else offset
        v = b.insert_element(v, b.load(gep(b, base, at)), ir.Constant(I32, lane))
    return v


def _emit_store(b, module, spec: QMicro, accs, bias, mult, fbias, res, out, ldc, epi_vals):
    w, epi = spec.isa.width, spec.epi
    ety = F32 if epi.y_dtype == "f32" else I8
    out_t = b.bitcast(out, ety.as_pointer())
    bv = ir.Constant(ir.VectorType(I32, w), None)  # the bias is in the accumulators
    for r in range(spec.mr):
        if spec.row_chan:
            mv = splat(b, loops.load_at(b, mult, r), w)
            fv = splat(b, loops.load_at(b, fbias, r), w) if epi.f_bias else None
        for v in range(len(accs[r])):
            valid = min(w, spec.ncols - v * w)
            if not spec.row_chan:
                mv = b.load(_ptr(b, mult, v * w, ir.VectorType(F32, w)), align=4)
                fv = None
                if epi.f_bias:
                    fv = b.load(_ptr(b, fbias, v * w, ir.VectorType(F32, w)), align=4)
            off = b.add(b.mul(ldc, i64(r)), i64(v * w))
            rv = _vec_or_lanes(b, res, off, I8, w, valid) if epi.r_dtype else None
            y = emit_epilogue(b, module, epi, b.load(accs[r][v]), bv, mv, fv, rv, epi_vals)
            if valid == w:
                b.store(y, _ptr(b, out_t, off, y.type), align=1)
            else:
                for lane in range(valid):
                    val = b.extract_element(y, ir.Constant(I32, lane))
                    loops.store_at(b, val, out_t, b.add(off, i64(lane)) if lane else off)


class QMicroCache:
    """Emits each distinct ``QMicro`` once per MODULE (shared by every kernel of a model),
    named ``<name>.qmicro<i>`` after the kernel that first needs it."""

    def __init__(self, module: ir.Module, name: str):
        self.module, self.name = module, name
        if not hasattr(module, "_nnc_qmicro"):
            module._nnc_qmicro = {}
        self.fns: dict[QMicro, ir.Function] = module._nnc_qmicro

    def get(self, spec: QMicro) -> ir.Function:
        if spec not in self.fns:
            self.fns[spec] = _emit_micro(self.module, f"{self.name}.qmicro{len(self.fns)}", spec)
        return self.fns[spec]


@dataclass(frozen=True)
class QTiling:
    """A ``rows x cols`` int8 GEMM over operands laid out for ``QMicro`` (see module doc).

    The B panel's column ``j`` starts at byte ``j * g``; per-channel arrays are padded to
    a multiple of ``nr`` when indexed by column. ``taps``: see ``QMicro`` (``kq`` then
    counts loop steps of ``len(taps)`` k groups each). ``b_col``: bytes from column ``j``
    to ``j + 1`` of B at the start of a column tile (0: ``g``, one panel); a panel cut
    into ``nr``-column blocks ``[N / nr][kq][nr][g]`` has ``b_col = kq * g`` (tiles always
    start at multiples of ``nr``) and ``b_kq = nr * g``."""

    rows: int
    cols: int
    kq: int
    a_row: int
    b_kq: int
    ldc: int
    act_is_a: bool
    act_signed: bool
    row_chan: bool
    epi: Epilogue
    taps: tuple[int, ...] = ()
    b_col: int = 0


def _gep_nn(b, ptr, index):
    """``&ptr[index]``, or ``ptr`` itself when it is a null constant (an absent operand)."""
    return ptr if isinstance(ptr, ir.Constant) else gep(b, ptr, index)


def _blocks(total: int, step: int) -> list[tuple[int, int, int]]:
    """``(size, start, count)`` runs of full blocks then the tail block."""
    full, tail = divmod(total, step)
    return [r for r in ((step, 0, full), (tail, full * step, int(tail > 0))) if r[2]]


def _cols_outer(isa: QIsa, t: QTiling) -> bool:
    """Whether re-reading A once per column block moves fewer bytes than re-reading B once
    per row block (B counted as its im2col size for ``taps`` tilings too: the order
    measured no different there)."""
    kbytes = t.kq * isa.group * max(1, len(t.taps))
    a_bytes, b_bytes = t.rows * kbytes, t.cols * kbytes
    return a_bytes * -(-t.cols // isa.nr) <= b_bytes * -(-t.rows // isa.mr)


def tile_cost(rows: int, ncols: int, width: int, steps: int) -> int:
    """Relative cost of one micro-kernel call of ``rows`` x ``ncols`` over ``steps`` k groups:
    the dot steps, the operand loads per step, and a per-call part (epilogue, stores)."""
    nv = -(-ncols // width)
    return steps * (rows * nv + rows + nv) + 8 * rows * nv + 32


def task_bounds(costs: list[int], n_tasks: int) -> list[int]:
    """Cut a sequence of tiles into ``n_tasks`` contiguous runs of about equal total cost:
    task ``k`` is tiles ``[bounds[k], bounds[k + 1])``; ``bounds`` is non-decreasing,
    starts at 0 and ends at ``len(costs)`` (each boundary at the prefix sum nearest
    ``k / n_tasks`` of the total)."""
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    total, bounds = prefix[-1], [0]
    for k in range(1, n_tasks):
        target = total * k / n_tasks
        j = bisect.bisect_left(prefix, target)
        if j > 0 and (j > len(costs) or target - prefix[j - 1] <= prefix[j] - target):
            j -= 1
        bounds.append(min(max(j, bounds[-1]), len(costs)))
    bounds.append(len(costs))
    return bounds


def _sized(bb, blk, runs, emit) -> None:
    """``emit(size)`` for block ``blk`` of ``runs`` (``_blocks``): full blocks, then the tail."""
    if len(runs) == 1:
        emit(runs[0][0])
        return
    with bb.if_else(bb.icmp_unsigned("<", blk, i64(runs[0][2]))) as (full, tail):
        with full:
            emit(runs[0][0])
        with tail:
            emit(runs[1][0])


@dataclass(frozen=True)
class RowHooks:
    """Extra per-task work of an ``emit_tiles`` call whose tasks own whole rows.

    ``before``/``after`` are called as ``f(bb, r0, r1, ptrs, extra)`` around the tiles of
    rows ``[r0, r1)`` (i64 values) inside the same task: ``ptrs`` are the tile operands
    ``(a, b, bias, mult, fbias, res, out)`` as the task sees them, ``extra`` the values of
    ``captures`` (which must not repeat a tile operand: outlined pointers are noalias).
    They may only touch rows ``[r0, r1)`` of their buffers (tasks run concurrently)."""

    captures: tuple = ()
    before: Callable | None = None
    after: Callable | None = None


def _unpack(ptrs: list, args: list) -> list:
    """The tile operands inside a parallel body: constants as they are, the others taken
    in order from the body's ``args`` (the captured non-constant operands)."""
    it = iter(args)
    return [p if isinstance(p, ir.Constant) else next(it) for p in ptrs]


def _hook_pass(b, t: QTiling, hooks: RowHooks, fn, ptrs: list) -> None:
    """``fn(bb, r0, r1, tile_ptrs, extra)`` over all ``t.rows`` rows as one parallel loop
    of single-row tasks (work: the bytes of the rows' output)."""
    if fn is None:
        return
    caps = [p for p in ptrs if not isinstance(p, ir.Constant)]

    def body(bb, r0, r1, args):
        fn(bb, r0, r1, tuple(_unpack(ptrs, args[: len(caps)])), args[len(caps) :])

    work = 2 * t.rows * t.cols * t.epi.out_bytes
    parallel_blocks(b, t.rows, 1, caps + list(hooks.captures), body, work=work, name="qhook")


def _row_task_bounds(t: QTiling, isa: QIsa, n_in: int, k_steps: int) -> list[int]:
    """Task bounds (in tiles) of a rows-outer tiling cut at row-block boundaries."""
    runs = _blocks(t.rows, isa.mr)
    costs = [tile_cost(size, t.cols, isa.width, k_steps) for size, _, cnt in runs
             for _ in range(cnt)]  # fmt: skip
    return [x * n_in for x in task_bounds(costs, min(len(costs), TASKS))]


def emit_tiles(
    b, cache: QMicroCache, isa: QIsa, t: QTiling, a, bp, bias, mult, fbias, res, out,
    hooks: RowHooks | None = None,
):  # fmt: skip
    """Call the micro-kernels over every tile of ``t``, on the thread pool when big enough.

    The loop order re-streams the cheaper operand: column blocks outer (each B column
    panel stays in cache while A is re-read once per column block) unless re-reading B
    once per row block moves fewer bytes. The tiles, in that (outer block, inner block)
    order, are cut into ``TASKS`` (fewer when there are fewer tiles) contiguous runs of
    equal estimated cost (``tile_cost``, so tail tiles count less; ``task_bounds``, a
    constant table): the pool's equal chunks of tasks then carry equal work for 2, 3, 4
    and 8 threads. Every tile is computed by the same micro-kernel call whatever the
    tasks, so results do not depend on the thread count. Operands must not be written by
    the tiles (only ``out`` is). With ``hooks`` the row blocks are outer and tasks are
    runs of whole row blocks, each calling the hooks around its tiles (``RowHooks``);
    with fewer than ``HOOK_ROW_BLOCKS`` row blocks the hooks run as parallel passes over
    single rows before and after the tiles instead.
    """
    ob = t.epi.out_bytes
    col_runs, row_runs = _blocks(t.cols, isa.nr), _blocks(t.rows, isa.mr)
    if hooks is not None and sum(r[2] for r in row_runs) < HOOK_ROW_BLOCKS:
        # Too few row blocks for row-owning tasks to keep the pool busy: the hooks run as
        # their own parallel passes over rows around an unconstrained tiling.
        ptrs = [a, bp, bias, mult, fbias, res, out]
        _hook_pass(b, t, hooks, hooks.before, ptrs)
        emit_tiles(b, cache, isa, t, a, bp, bias, mult, fbias, res, out)
        _hook_pass(b, t, hooks, hooks.after, ptrs)
        return
    cols_outer = hooks is None and _cols_outer(isa, t)
    unroll = 1 if t.taps else next(u for u in (4, 2, 1) if t.kq % u == 0)
    key = epilogue_key(t.epi)
    sizes = [i64(t.kq), i64(t.a_row), i64(t.b_kq), i64(t.ldc), *epilogue_args(t.epi)]
    outer, inner = (col_runs, row_runs) if cols_outer else (row_runs, col_runs)
    steps = (isa.nr, isa.mr) if cols_outer else (isa.mr, isa.nr)
    n_out, n_in = sum(r[2] for r in outer), sum(r[2] for r in inner)
    if not n_out or not n_in:
        return
    k_steps = t.kq * max(1, len(t.taps))
    costs = [
        tile_cost(*((si, so) if cols_outer else (so, si)), isa.width, k_steps)
        for so, _, co in outer
        for _ in range(co)
        for si, _, ci in inner
        for _ in range(ci)
    ]
    if hooks is None:
        n_tasks = min(len(costs), TASKS)
        bounds = task_bounds(costs, n_tasks)
    else:
        bounds = _row_task_bounds(t, isa, n_in, k_steps)
        n_tasks = len(bounds) - 1
    table = const_global(b.module, b.module.get_unique_name(f"{b.function.name}.qtasks"),
                         np.array(bounds, np.int64))  # fmt: skip
    ptrs = [a, bp, bias, mult, fbias, res, out]
    caps = [p for p in ptrs if not isinstance(p, ir.Constant)]
    extra = list(hooks.captures) if hooks else []
    work = 2 * t.rows * t.cols * t.kq * isa.group * max(1, len(t.taps))

    def body(bb, lo, hi, args):
        pa, pb, pbias, pmult, pfbias, pres, pout = _unpack(ptrs, args)
        tab = bb.bitcast(table, I64.as_pointer())
        t0 = loops.load_at(bb, tab, lo)
        t1 = loops.load_at(bb, tab, hi)
        if hooks is not None:
            tile_ptrs = (pa, pb, pbias, pmult, pfbias, pres, pout)
            r0 = bb.mul(bb.udiv(t0, i64(n_in)), i64(isa.mr))
            r1 = bb.mul(bb.udiv(t1, i64(n_in)), i64(isa.mr))
            r1 = bb.select(bb.icmp_signed("<", r1, i64(t.rows)), r1, i64(t.rows))
            if hooks.before:
                hooks.before(bb, r0, r1, tile_ptrs, args[len(caps) :])

        def call(i0, mr, j0, ncols):
            spec = QMicro(isa, mr, ncols, unroll, t.act_is_a, t.act_signed, t.row_chan, key,
                          t.taps)  # fmt: skip
            ch = i0 if t.row_chan else j0
            pos = bb.add(bb.mul(i0, i64(t.ldc)), j0)
            call_args = [
                gep(bb, pa, bb.mul(i0, i64(t.a_row))),
                gep(bb, pb, bb.mul(j0, i64(t.b_col or isa.group))),
                _gep_nn(bb, pbias, ch),
                _gep_nn(bb, pmult, ch),
                _gep_nn(bb, pfbias, ch),
                _gep_nn(bb, pres, pos),
                gep(bb, pout, bb.mul(pos, i64(ob))),
                *sizes,
            ]
            bb.call(cache.get(spec), call_args)

        with for_range(bb, t0, t1, name="qt") as idx:
            o = bb.udiv(idx, i64(n_in)) if n_out > 1 else i64(0)
            i = bb.urem(idx, i64(n_in)) if n_out > 1 else idx
            o0, i0 = bb.mul(o, i64(steps[0])), bb.mul(i, i64(steps[1]))

            def at_outer(o_size):
                def at_inner(i_size):
                    if cols_outer:
                        call(i0, i_size, o0, o_size)
                    else:
                        call(o0, o_size, i0, i_size)

                _sized(bb, i, inner, at_inner)

            _sized(bb, o, outer, at_outer)
        if hooks is not None and hooks.after:
            hooks.after(bb, r0, r1, tile_ptrs, args[len(caps) :])

    parallel_for(b, n_tasks, caps + extra, body, work=work, name="qtiles")


def emit_qgemm(
    module: ir.Module,
    name: str,
    *,
    a_shape: Shape,
    w,
    w_scale,
    x_scale: float,
    x_zp: int = 0,
    x_dtype: str = "u8",
    y_dtype: str = "u8",
    y_scale: float = 1.0,
    y_zp: int = 0,
    bias=None,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    r_scale: float | None = None,
    r_zp: int = 0,
    r_dtype: str | None = None,
    trans_b: bool = True,
    target=None,
) -> KernelFn:
    """Quantized ``Y = X @ W^T`` (Gemm/MatMul with constant weights); args ``x, [r], y``.

    ``x`` is u8/i8 of ``a_shape`` (leading dims fold into M, last is K); ``w`` is the s8
    weight ``[N, K]`` (``[K, N]`` when not ``trans_b``) with per-channel (or scalar)
    ``w_scale``; ``bias`` int32 ``[N]`` (or float32 for f32 output). Output ``y`` is
    ``a_shape[:-1] + (N,)`` of ``y_dtype`` (u8/i8 requantized, f32 dequantized); the
    residual ``r`` (when ``r_dtype`` is set) has y's shape. Weights, folded bias and
    multipliers are packed at compile time into globals ``name.*``; scratch holds the
    activations repacked for the ISA (``select_qisa`` of ``target`` or the module's).
    Numeric contract: ``requant.py``.
    """
    isa = select_qisa(target or module_target(module))
    wq = as_array(w).astype(np.int8)
    wq = wq if trans_b else wq.T
    n, k = wq.shape
    if a_shape[-1] != k:
        raise ValueError(f"qgemm: x {a_shape} does not match weights [{n}, {k}]")
    m = int(np.prod(a_shape[:-1], dtype=np.int64))
    dom = ActDomain.of(isa, x_dtype, x_zp)
    params = make_params(
        wq, bias, dom, w_scale=w_scale, x_scale=x_scale, y_dtype=y_dtype, y_scale=y_scale,
        y_zp=y_zp, activation=activation, act_alpha=act_alpha, act_beta=act_beta,
        r_scale=r_scale, r_zp=r_zp, r_dtype=r_dtype,
    )  # fmt: skip
    g = isa.group
    kp = ceil_to(max(k, 1), g)
    np_ = ceil_to(max(n, 1), isa.nr)
    repack = dom.flip or kp != k
    scratch = ceil_to(m * kp, 64) if repack else 0
    has_res = r_dtype is not None
    fn, b, args = loops.new_function(module, name, 2 + has_res, scratch=scratch > 0)
    x = b.bitcast(args[0], I8_PTR)
    res = b.bitcast(args[1], I8_PTR) if has_res else null(I8_PTR)
    out = b.bitcast(args[1 + has_res], I8_PTR)
    kq, nr = kp // g, isa.nr
    blocks = pack_panel(wq.T, g, np_).reshape(kq, np_ // nr, nr, g).transpose(1, 0, 2, 3)
    packed = np.ascontiguousarray(blocks).reshape(-1)  # [N / nr][kq][nr][g]: streamed per tile
    panel = b.bitcast(const_global(module, f"{name}.wpack", packed), I8_PTR)
    bias_p, mult_p, fbias_p = param_globals(b, module, name, params, np_)
    a = x
    if repack:
        a = args[-1]
        emit_pack_rows(b, x, a, m, k, kp, dom.flip)
    tiling = QTiling(m, n, kq, kp, nr * g, n, True, dom.signed, False, params.epi, b_col=kq * g)
    if m and n:
        emit_tiles(b, QMicroCache(module, name), isa, tiling, a, panel, bias_p, mult_p,
                   fbias_p, res, out)  # fmt: skip
    b.ret_void()
    return KernelFn(fn, scratch)


def emit_pack_rows(b, src, dst, m: int, k: int, kp: int, flip: bool) -> None:
    """``dst[i*kp + j] = src[i*k + j] (^ 0x80 if flip)`` for ``j < k``, 0 up to ``kp``."""
    with for_range(b, 0, m, name="pm") as i:
        s_row = gep(b, src, b.mul(i, i64(k)))
        d_row = gep(b, dst, b.mul(i, i64(kp)))
        with for_range(b, 0, k, name="pk") as j:
            v = loops.load_at(b, s_row, j)
            loops.store_at(b, b.xor(v, ir.Constant(I8, 0x80)) if flip else v, d_row, j)
        for j in range(k, kp):
            loops.store_at(b, ir.Constant(I8, 0), d_row, j)
