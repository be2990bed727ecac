"""Codebook gemm kernel (``nn.codebook_gemm``): the weight stays 4/8-bit indices in the library.

``y[m, n] = act(sum_k x[m, k] * codebook[idx[n, k]] + bias[n])``. The indices are read in
the blocked layout of ``nnc/ir/ops_codebook.py`` (16 output columns per block, per ``k``
8 bytes of nibble pairs or 16 bytes) and decoded **at run time, per register tile**:
for each ``k`` the tile's 16-column blocks are turned into float vectors by a table
lookup and multiplied into ``rows x vectors`` accumulators (``llvm.fmuladd``); the full
weight is never materialised. Lookup by target (``qisa.target_features``):

* 4-bit on AVX-512F: one ``vpermps zmm`` per 16 indices (the 16-entry codebook lives
  in a register);
* 4-bit on AVX2: two ``vpermps ymm`` (codebook halves) + a blend per 8 indices;
* otherwise (8-bit, other targets): scalar table loads inserted into the vector.

Output column tiles (``tb`` blocks) are the ``parallel_for`` tasks; row blocks of
``mr`` rows reuse each decoded vector ``mr`` times. ``layout="conv1x1"`` (NCHW 1x1 conv)
is the same gemm per image with the pixels as rows: x (K, P) and y (N, P) per image are
read/written with the pixel stride 1 and channel stride P (``images`` images of ``m = P``
pixels), so the decode is shared by every pixel of a row block just the same. The
epilogue (bias, activation, partial last tile) runs on a per-tile staging buffer.
Exact decode: results are the float gemm on the decoded weight up to float summation
order.

Args: ``x, indices (u8 as float*), codebook, [bias], out``.
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.gemm import entry_alloca, splat, tile_shape
from nnc.backends.llvm.kernels.qisa import module_target, target_features
from nnc.backends.llvm.loops import F32, I8, I32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for

BLOCK = 16


def lut_mode(module: ir.Module, bits: int) -> str:
    """``avx512``, ``avx2`` or ``scalar``: how indices become floats (module docstring)."""
    feats = target_features(module_target(module))
    if "avx512f" in feats:
        return "avx512" if bits <= 4 else "scalar"
    if "avx2" in feats and bits <= 4:
        return "avx2"
    return "scalar"


def _consts(ty: ir.Type, values) -> ir.Constant:
    return ir.Constant(ir.VectorType(ty, len(values)), list(values))


class _Decoder:
    """Emits the lookup of one 16-column block at one ``k`` into ``16 / width`` vectors."""

    def __init__(self, b, module, idx, book, k: int, bits: int, width: int, mode: str):
        self.b, self.module, self.idx, self.book = b, module, idx, book
        self.k, self.bits, self.width, self.mode = k, bits, width, mode
        self.bpb = BLOCK // 2 if bits <= 4 else BLOCK  # bytes per (block, k)
        v16, v8 = ir.VectorType(F32, 16), ir.VectorType(F32, 8)
        fptr = book
        if mode == "avx512":
            self.table = b.load(b.bitcast(fptr, v16.as_pointer()), align=4)
            self.perm = loops.intrinsic(
                module, "llvm.x86.avx512.permvar.sf.512", v16, [v16, ir.VectorType(I32, 16)]
            )
        elif mode == "avx2":
            self.lo = b.load(b.bitcast(fptr, v8.as_pointer()), align=4)
            self.hi = b.load(b.bitcast(gep(b, fptr, 8), v8.as_pointer()), align=4)
            self.perm = loops.intrinsic(
                module, "llvm.x86.avx2.permps", v8, [v8, ir.VectorType(I32, 8)]
            )

    def indices(self, nb, kk) -> ir.Value:
        """<16 x i32> indices of block ``nb`` at reduction step ``kk``."""
        b = self.b
        off = b.mul(b.add(b.mul(nb, i64(self.k)), kk), i64(self.bpb))
        ptr = b.bitcast(
            b.gep(self.idx, [off], inbounds=True), ir.VectorType(I8, self.bpb).as_pointer()
        )
        raw = b.load(ptr, align=1)
        if self.bits <= 4:
            lo = b.and_(raw, _consts(I8, [0xF] * 8))
            hi = b.lshr(raw, _consts(I8, [4] * 8))
            raw = b.shuffle_vector(lo, hi, _consts(I32, range(16)))
        return b.zext(raw, ir.VectorType(I32, 16))

    def floats(self, nb, kk) -> list[ir.Value]:
        """The block's 16 weights as ``16 / width`` vectors of ``width`` floats."""
        b, w = self.b, self.width
        idx = self.indices(nb, kk)
        if self.mode == "avx512":
            full = b.call(self.perm, [self.table, idx])
        elif self.mode == "avx2":
            halves = []
            for h in range(2):
                part = b.shuffle_vector(idx, idx, _consts(I32, range(8 * h, 8 * h + 8)))
                lo, hi = b.call(self.perm, [self.lo, part]), b.call(self.perm, [self.hi, part])
                big = b.icmp_unsigned(">=", part, _consts(I32, [8] * 8))
                halves.append(b.select(big, hi, lo))
            full = b.shuffle_vector(halves[0], halves[1], _consts(I32, range(16)))
        else:
            full = ir.Constant(ir.VectorType(F32, 16), ir.Undefined)
            for lane in range(16):
                j = b.extract_element(idx, ir.Constant(I32, lane))
                v = b.load(b.gep(self.book, [b.zext(j, loops.I64)], inbounds=True))
                full = b.insert_element(full, v, ir.Constant(I32, lane))
        if w == 16:
            return [full]
        return [
            b.shuffle_vector(full, full, _consts(I32, range(s, s + w))) for s in range(0, 16, w)
        ]


def emit_codebook_gemm(
    module: ir.Module,
    name: str,
    *,
    m: int,
    n: int,
    k: int,
    bits: int,
    has_bias: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
    lut: str | None = None,
    layout: str = "gemm",
    images: int = 1,
) -> KernelFn:
    """Emit the kernel described in the module docstring (``lut`` forces a lookup mode).

    ``m`` rows (gemm: M; conv1x1: pixels H*W per image), ``images`` (conv1x1: batch)."""
    tile = tile_shape(module)
    width = min(max(tile.width, 1), BLOCK)
    while BLOCK % width:
        width //= 2
    tb = max(1, tile.nr // BLOCK)  # blocks per column tile
    nvec = tb * BLOCK // width
    mr = max(1, min(m, tile.mr * tile.nrv // nvec))
    ncols = tb * BLOCK
    ntiles = -(-n // ncols)
    mode = lut or lut_mode(module, bits)
    if layout == "gemm":  # element (r, k) of x at r*sxr + k*sxk, (r, n) of y at r*syr + n*syn
        sxr, sxk, syr, syn = k, 1, n, 1
    else:
        sxr, sxk, syr, syn = 1, m, 1, m
    n_args = 4 + int(has_bias)
    fn, b, args = loops.new_function(module, name, n_args)
    vec = ir.VectorType(F32, width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{width}f32", vec, [vec] * 3)

    def tiles(b: ir.IRBuilder, lo, hi, targs) -> None:
        x_all, idx_f, book = targs[0], targs[1], targs[2]
        bias = targs[3] if has_bias else None
        out_all = targs[-1]
        idx = b.bitcast(idx_f, loops.I8_PTR)
        dec = _Decoder(b, module, idx, book, k, bits, width, mode)
        stage = b.bitcast(entry_alloca(b, ir.ArrayType(F32, mr * ncols)), loops.F32_PTR)
        accs = [[entry_alloca(b, vec) for _ in range(nvec)] for _ in range(mr)]

        def row_block(t, m0, rows: int, x, out) -> None:
            """Rows ``m0 .. m0 + rows`` of column tile ``t`` of one image (x, out)."""
            for r in range(rows):
                for slot in accs[r]:
                    b.store(ir.Constant(vec, None), slot)
            with for_range(b, 0, k, name="k") as kk:
                ws = []
                for j in range(tb):
                    ws += dec.floats(b.add(b.mul(t, i64(tb)), i64(j)), kk)
                for r in range(rows):
                    xi = b.add(b.mul(b.add(m0, i64(r)), i64(sxr)), b.mul(kk, i64(sxk)))
                    a = splat(b, load_at(b, x, xi), vec)
                    for v in range(nvec):
                        b.store(b.call(fma, [a, ws[v], b.load(accs[r][v])]), accs[r][v])
            for r in range(rows):
                for v in range(nvec):
                    ptr = b.bitcast(gep(b, stage, r * ncols + v * width), vec.as_pointer())
                    b.store(b.load(accs[r][v]), ptr, align=4)
            n0 = b.mul(t, i64(ncols))
            valid = b.select(
                b.icmp_unsigned("<", b.add(n0, i64(ncols)), i64(n)), i64(ncols), b.sub(i64(n), n0)
            )
            for r in range(rows):
                orow = b.mul(b.add(m0, i64(r)), i64(syr))
                with for_range(b, 0, valid, name="ej") as j:
                    val = load_at(b, stage, b.add(i64(r * ncols), j))
                    col = b.add(n0, j)
                    if bias is not None:
                        val = b.fadd(val, load_at(b, bias, col))
                    val = emit_activation(b, module, val, activation, act_alpha, act_beta)
                    store_at(b, val, out, b.add(orow, b.mul(col, i64(syn))))

        with for_range(b, lo, hi, name="t") as t, for_range(b, 0, images, name="img") as img:
            x = gep(b, x_all, b.mul(img, i64(m * k)))
            out = gep(b, out_all, b.mul(img, i64(m * n)))
            full, tail = divmod(m, mr)
            if full:
                with for_range(b, 0, full, name="mb") as mb:
                    row_block(t, b.mul(mb, i64(mr)), mr, x, out)
            if tail:
                row_block(t, i64(full * mr), tail, x, out)

    parallel_for(b, ntiles, list(args), tiles, work=2 * images * m * n * k)
    b.ret_void()
    return KernelFn(fn)
