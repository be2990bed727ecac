"""Gemm and MatMul kernels on a register-blocked SIMD micro-kernel (shared with conv2d).

The micro-kernel computes an ``mr x (nrv * width)`` tile of ``C = A @ B`` in vector
registers: per k step it loads ``nrv`` contiguous vectors of a B row, broadcasts ``mr``
scalars of A and issues ``mr * nrv`` ``llvm.fmuladd`` on ``<width x float>``. A is read in
place with arbitrary strides (scalars only), B rows must be contiguous; when they are not
(``trans_b``) or a column tile is partial, B is packed into a zero-padded scratch panel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.loops import F32, I32, f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for
from nnc.backends.llvm.targets import host_target

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TileShape:
    """Register tile of the micro-kernel: ``mr`` rows by ``nrv`` vectors of ``width`` floats."""

    width: int
    mr: int
    nrv: int

    @property
    def nr(self) -> int:
        """Columns per tile."""
        return self.width * self.nrv


def tile_shape(module: ir.Module) -> TileShape:
    """Tile for ``module.triple``'s architecture (the host's when the triple is unset).

    x86-64: a 12x32 tile of 16-wide vectors when the host has AVX-512 and the module
    targets the host architecture, else 6x16 of 8-wide (AVX2); AArch64: 8x12 of 4-wide
    NEON (24 accumulators); Thumb (Cortex-M) 4x4 scalars; other ARM 4x8 of 4-wide
    NEON. Every shape is correct on every
    target (LLVM legalizes the vector width); the choice only affects register use.
    """
    host = host_target()
    triple = module.triple or ""
    arch = host.arch if triple.startswith("unknown") or not triple else triple.split("-")[0]
    if arch in ("x86_64", "amd64"):
        feats = set(host.features.split(",")) if host.arch == "x86_64" else set()
        return TileShape(16, 12, 2) if "+avx512f" in feats else TileShape(8, 6, 2)
    if arch.startswith(("aarch64", "arm64")):
        return TileShape(4, 8, 3)
    if arch.startswith("thumb"):  # Cortex-M: scalar FPU with 32 single registers
        return TileShape(1, 4, 4)
    return TileShape(4, 4, 2)


@dataclass(frozen=True)
class MicroSpec:
    """A micro-kernel ``void f(float* a, float* b, float* c)`` storing ``C = A @ B``.

    The reduction runs ``outer`` (runtime loop) times over the unrolled ``inner`` steps;
    step ``(o, (ao, bo))`` broadcasts ``a[r*a_row + o*a_outer + ao]`` for each row ``r`` and
    loads the ``nrv`` vectors at ``b + o*b_outer + bo``. Row ``r`` of C is stored at
    ``c + r*ldc`` (unaligned vector stores, every column of the tile written).
    """

    mr: int
    nrv: int
    width: int
    a_row: int
    outer: int
    a_outer: int
    b_outer: int
    inner: tuple[tuple[int, int], ...]
    ldc: int


def _vec_ptr(b: ir.IRBuilder, ptr: ir.Value, index: ir.Value | int, vec: ir.Type) -> ir.Value:
    return b.bitcast(gep(b, ptr, index), vec.as_pointer())


def splat(b: ir.IRBuilder, scalar: ir.Value, vec: ir.VectorType) -> ir.Value:
    """Broadcast an f32 to every lane of ``vec``."""
    one = b.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, vec.count), [0] * vec.count)
    return b.shuffle_vector(one, ir.Constant(vec, ir.Undefined), mask)


def _emit_micro(module: ir.Module, fname: str, spec: MicroSpec) -> ir.Function:
    """Define the micro-kernel ``fname`` described by ``spec`` (internal linkage)."""
    fn, b, (a, bp, c) = loops.new_function(module, fname, 3)
    fn.linkage = "internal"
    vec = ir.VectorType(F32, spec.width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{spec.width}f32", vec, [vec] * 3)
    rows, cols = range(spec.mr), range(spec.nrv)
    accs = [[b.alloca(vec) for _ in cols] for _ in rows]
    for row in accs:
        for slot in row:
            b.store(ir.Constant(vec, None), slot)
    with for_range(b, 0, spec.outer, name="k") as o:
        a_o = gep(b, a, b.mul(o, i64(spec.a_outer)))
        b_o = gep(b, bp, b.mul(o, i64(spec.b_outer)))
        vals = [[b.load(slot) for slot in row] for row in accs]
        for ao, bo in spec.inner:
            bv = [b.load(_vec_ptr(b, b_o, bo + v * spec.width, vec), align=4) for v in cols]
            for r in rows:
                s = splat(b, load_at(b, a_o, r * spec.a_row + ao), vec)
                vals[r] = [b.call(fma, [s, bv[v], vals[r][v]]) for v in cols]
        for row, vrow in zip(accs, vals, strict=True):
            for slot, val in zip(row, vrow, strict=True):
                b.store(val, slot)
    for r in rows:
        for v in cols:
            b.store(b.load(accs[r][v]), _vec_ptr(b, c, r * spec.ldc + v * spec.width, vec), align=4)
    b.ret_void()
    return fn


class MicroCache:
    """Emits each distinct ``MicroSpec`` once per kernel, as ``<name>.micro<i>``."""

    def __init__(self, module: ir.Module, name: str):
        self.module, self.name, self.fns = module, name, {}

    def get(self, spec: MicroSpec) -> ir.Function:
        """The micro-kernel function for ``spec``."""
        if spec not in self.fns:
            fname = f"{self.name}.micro{len(self.fns)}"
            self.fns[spec] = _emit_micro(self.module, fname, spec)
        return self.fns[spec]


def scratch_f32(b: ir.IRBuilder, scratch: ir.Value, byte_offset: int) -> ir.Value:
    """``(float*)(scratch + byte_offset)``."""
    return b.bitcast(b.gep(scratch, [i64(byte_offset)], inbounds=True), loops.F32_PTR)


def align64(nbytes: int) -> int:
    """Round a byte count up to a multiple of 64."""
    return (nbytes + 63) // 64 * 64


@dataclass(frozen=True)
class GemmPlan:
    """``C[m, n] (ldc = n) = A @ B``: ``A[r, k]`` at ``a + r*a_row + k*a_k``;
    ``B[k, j]`` at ``b + j*k + k`` if ``trans_b`` else ``b + k*n + j``."""

    m: int
    n: int
    k: int
    a_row: int
    a_k: int
    trans_b: bool

    def scratch_floats(self, tile: TileShape) -> tuple[int, int]:
        """Floats of the packed B panel and of the partial-tile staging buffer."""
        panel = self.k * tile.nr if (self.trans_b or self.n % tile.nr) else 0
        return panel, tile.mr * tile.nr if self.n % tile.nr else 0


def _micro_spec(plan: GemmPlan, tile: TileShape, mr: int, b_step: int, ldc: int) -> MicroSpec:
    unroll = 4 if plan.k % 4 == 0 else 1
    inner = tuple((i * plan.a_k, i * b_step) for i in range(unroll))
    return MicroSpec(
        mr, tile.nrv, tile.width, plan.a_row, plan.k // unroll,
        unroll * plan.a_k, unroll * b_step, inner, ldc,
    )  # fmt: skip


def _pack_panel(b, plan: GemmPlan, nr: int, src, panel, n0, nvalid: int) -> None:
    """``panel[k*nr + j] = B[k, n0 + j]`` for ``j < nvalid``, 0 up to ``nr``."""
    with for_range(b, 0, plan.k, name="pk") as kk:
        dst = gep(b, panel, b.mul(kk, i64(nr)))
        if plan.trans_b:
            col0 = gep(b, src, b.add(b.mul(n0, i64(plan.k)), kk))
            with for_range(b, 0, nvalid, name="pj") as j:
                store_at(b, load_at(b, col0, b.mul(j, i64(plan.k))), dst, j)
        else:
            row = gep(b, src, b.add(b.mul(kk, i64(plan.n)), n0))
            with for_range(b, 0, nvalid, name="pj") as j:
                store_at(b, load_at(b, row, j), dst, j)
    if nvalid < nr:
        with for_range(b, 0, plan.k, name="pk") as kk:
            _zero_run(b, gep(b, panel, b.mul(kk, i64(nr))), nvalid, nr)


def _zero_run(b, ptr, start: int, stop: int) -> None:
    """``ptr[start:stop] = 0``."""
    with for_range(b, start, stop, name="z") as j:
        store_at(b, f32(0.0), ptr, j)


def _row_blocks(b, cache, plan, tile, a, bsrc, b_step, dst, ldc, copy_out=None) -> None:
    """Run the micro-kernel over every row block of one column tile.

    Each block stores to ``dst + m0*ldc``; with ``copy_out(m0, rows)`` the block instead
    lands at ``dst`` (a staging tile) and ``copy_out`` moves the valid part.
    """
    mfull, mtail = divmod(plan.m, tile.mr)
    for rows, start, count in ((tile.mr, 0, mfull), (mtail, mfull * tile.mr, 1 if mtail else 0)):
        if count == 0:
            continue
        fn = cache.get(_micro_spec(plan, tile, rows, b_step, ldc))
        with for_range(b, 0, count, name="mb") as mb:
            m0 = b.add(b.mul(mb, i64(tile.mr)), i64(start))
            a_blk = gep(b, a, b.mul(m0, i64(plan.a_row)))
            c_blk = dst if copy_out else gep(b, dst, b.mul(m0, i64(ldc)))
            b.call(fn, [a_blk, bsrc, c_blk])
            if copy_out:
                copy_out(m0, rows)


def entry_alloca(b: ir.IRBuilder, ty: ir.Type) -> ir.Value:
    """An ``alloca`` in the function's entry block (promotable to a register); the builder
    must be at the end of its current block and stays there."""
    cur = b.block
    b.position_at_start(b.function.entry_basic_block)
    slot = b.alloca(ty)
    b.position_at_end(cur)
    return slot


def _dot_rows(b, plan: GemmPlan, a, bm, c) -> None:
    """``C[i, j] = dot(A[i, :], B^T[j, :])`` for few rows of A and transposed B: both
    operands are read along k, a reassociable reduction LLVM vectorizes; each B row is
    read once (j outer) and reused for all rows of A."""
    fast = ("fast",)

    def cols(b, lo, hi, args) -> None:  # columns [lo, hi) of C (parallel_for body)
        a, bm, c = args
        with for_range(b, lo, hi, name="dj") as j, for_range(b, 0, plan.m, name="di") as i:
            a_row = gep(b, a, b.mul(i, i64(plan.a_row)))
            b_row = gep(b, bm, b.mul(j, i64(plan.k)))
            acc = entry_alloca(b, F32)
            b.store(f32(0.0), acc)
            with for_range(b, 0, plan.k, name="dk") as kk:
                a_k = load_at(b, a_row, b.mul(kk, i64(plan.a_k)))
                prod = b.fmul(a_k, load_at(b, b_row, kk), flags=fast)
                b.store(b.fadd(b.load(acc), prod, flags=fast), acc)
            store_at(b, b.load(acc), c, b.add(b.mul(i, i64(plan.n)), j))

    parallel_for(b, plan.n, [a, bm, c], cols, work=2 * plan.m * plan.n * plan.k)


def emit_gemm_core(b, cache: MicroCache, plan: GemmPlan, tile: TileShape, a, bm, c, panel, stage):
    """Emit ``C = A @ B`` (no epilogue) at the builder's position; see ``GemmPlan``.

    ``panel`` (``k*nr`` floats) and ``stage`` (``mr*nr`` floats) are scratch pointers,
    used only when ``plan.scratch_floats`` says so.
    """
    if plan.trans_b and plan.m < tile.mr:
        _dot_rows(b, plan, a, bm, c)
        return
    nr = tile.nr
    nfull, ntail = divmod(plan.n, nr)
    if nfull and plan.trans_b:  # one shared packed panel: serial
        with for_range(b, 0, nfull, name="nb") as nb:
            n0 = b.mul(nb, i64(nr))
            _pack_panel(b, plan, nr, bm, panel, n0, nr)
            _row_blocks(b, cache, plan, tile, a, panel, nr, gep(b, c, n0), plan.n)
    elif nfull:  # independent column tiles on the thread pool (parallel.py)

        def col_tiles(b, lo, hi, args) -> None:
            a, bm, c = args
            with for_range(b, lo, hi, name="nb") as nb:
                n0 = b.mul(nb, i64(nr))
                _row_blocks(b, cache, plan, tile, a, gep(b, bm, n0), plan.n, gep(b, c, n0), plan.n)

        work = 2 * plan.m * nr * nfull * plan.k
        parallel_for(b, nfull, [a, bm, c], col_tiles, work=work)
    if ntail:
        n0 = i64(nfull * nr)
        _pack_panel(b, plan, nr, bm, panel, n0, ntail)

        def copy_out(m0, rows):
            for r in range(rows):
                dst = gep(b, c, b.add(b.mul(b.add(m0, i64(r)), i64(plan.n)), n0))
                with for_range(b, 0, ntail, name="cj") as j:
                    store_at(b, load_at(b, stage, b.add(j, i64(r * nr))), dst, j)

        _row_blocks(b, cache, plan, tile, a, panel, nr, stage, nr, copy_out)


def _c_index(b, c_shape: Shape | None, m, n) -> ir.Value | None:
    """Index into C broadcast to (M, N) (None when C is absent)."""
    if c_shape is None:
        return None
    cm, cn = (1, 1) if len(c_shape) == 0 else ((1,) + tuple(c_shape))[-2:]
    idx = i64(0)
    if cm > 1:
        idx = b.mul(m, i64(cn))
    return b.add(idx, n) if cn > 1 else idx


def emit_gemm(
    module: ir.Module,
    name: str,
    *,
    a_shape: Shape,
    b_shape: Shape,
    trans_a: bool,
    trans_b: bool,
    alpha: float,
    beta: float,
    c_shape: Shape | None = None,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
) -> KernelFn:
    """ONNX Gemm ``Y = act(alpha * op(A) @ op(B) + beta * C)``; args ``a, b, [c], out``.

    ``op(X)`` transposes when ``trans_*``; C (optional) broadcasts unidirectionally to
    ``(M, N)``. Scratch holds the packed B panel / partial-tile staging buffer.
    """
    m, k = (a_shape[1], a_shape[0]) if trans_a else tuple(a_shape)
    n = b_shape[0] if trans_b else b_shape[1]
    tile = tile_shape(module)
    plan = GemmPlan(m, n, k, 1 if trans_a else k, m if trans_a else 1, bool(trans_b))
    panel_f, stage_f = plan.scratch_floats(tile)
    scratch_bytes = align64(4 * panel_f) + align64(4 * stage_f)
    n_args = 3 + (c_shape is not None)
    fn, b, args = loops.new_function(module, name, n_args, scratch=scratch_bytes > 0)
    a, bm, out = args[0], args[1], args[n_args - 1]
    panel = scratch_f32(b, args[-1], 0) if scratch_bytes else None
    stage = scratch_f32(b, args[-1], align64(4 * panel_f)) if stage_f else None
    emit_gemm_core(b, MicroCache(module, name), plan, tile, a, bm, out, panel, stage)
    cptr = args[2] if c_shape is not None else None
    if alpha != 1.0 or cptr is not None or activation != "none":
        with for_range(b, 0, m, name="em") as i, for_range(b, 0, n, name="en") as j:
            idx = b.add(b.mul(i, i64(n)), j)
            v = load_at(b, out, idx)
            if alpha != 1.0:
                v = b.fmul(v, f32(alpha))
            if cptr is not None and beta != 0.0:
                cv = load_at(b, cptr, _c_index(b, c_shape, i, j))
                v = b.fadd(v, cv if beta == 1.0 else b.fmul(cv, f32(beta)))
            store_at(b, emit_activation(b, module, v, activation, act_alpha, act_beta), out, idx)
    b.ret_void()
    return KernelFn(fn, scratch_bytes)


def _batch_offset(b, flat, out_batch: Shape, batch: Shape, mat: int) -> ir.Value:
    """Element offset of the matrix of an operand with batch dims ``batch`` (right-aligned,
    broadcast to ``out_batch``) for flat output batch index ``flat``."""
    full = (1,) * (len(out_batch) - len(batch)) + tuple(batch)
    off, stride, rem = i64(0), mat, flat
    for d in range(len(out_batch) - 1, -1, -1):
        idx = b.urem(rem, i64(out_batch[d])) if d else rem
        rem = b.udiv(rem, i64(out_batch[d]))
        if full[d] != 1:
            off = b.add(off, b.mul(idx, i64(stride)))
        stride *= full[d]
    return off


def emit_matmul(module: ir.Module, name: str, *, a_shape: Shape, b_shape: Shape) -> KernelFn:
    """``numpy.matmul`` for ranks >= 2 with broadcast batch dims; args ``a, b, out``.

    Output shape ``broadcast(a_shape[:-2], b_shape[:-2]) + (M, N)``. When B has no batch
    (all ones) the batch of A is folded into M.
    """
    *a_batch, m, k = a_shape
    *b_batch, k2, n = b_shape
    if k != k2:
        raise ValueError(f"matmul inner dims differ: {a_shape} @ {b_shape}")
    out_batch = tuple(np.broadcast_shapes(tuple(a_batch), tuple(b_batch)))
    nbatch = int(np.prod(out_batch, dtype=np.int64))
    fold = int(np.prod(b_batch, dtype=np.int64)) == 1 and tuple(a_batch) == out_batch
    plan = GemmPlan(m * nbatch if fold else m, n, k, k, 1, False)
    tile = tile_shape(module)
    panel_f, stage_f = plan.scratch_floats(tile)
    scratch_bytes = align64(4 * panel_f) + align64(4 * stage_f)
    fn, b, args = loops.new_function(module, name, 3, scratch=scratch_bytes > 0)
    a, bm, out = args[:3]
    panel = scratch_f32(b, args[-1], 0) if panel_f else None
    stage = scratch_f32(b, args[-1], align64(4 * panel_f)) if stage_f else None
    cache = MicroCache(module, name)
    if fold or nbatch == 0:
        if nbatch:
            emit_gemm_core(b, cache, plan, tile, a, bm, out, panel, stage)
    else:
        with for_range(b, 0, nbatch, name="batch") as t:
            a_t = gep(b, a, _batch_offset(b, t, out_batch, tuple(a_batch), m * k))
            b_t = gep(b, bm, _batch_offset(b, t, out_batch, tuple(b_batch), k * n))
            o_t = gep(b, out, b.mul(t, i64(m * n)))
            emit_gemm_core(b, cache, plan, tile, a_t, b_t, o_t, panel, stage)
    b.ret_void()
    return KernelFn(fn, scratch_bytes)
