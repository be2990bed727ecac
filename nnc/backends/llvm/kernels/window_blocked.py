"""Window kernels on blocked activations (NCHWc, block 16): depthwise conv and max pool.

In the blocked layout one vector holds ``width`` channels of one pixel, so a depthwise
tap is a vector FMA with a weight vector (16 channels of one tap: the ``c16`` packing of
``pack.py`` with group 1, ``(ceil(C/16), KH*KW, 16)``) and a max-pool tap a vector max:
no transposes, no masks inside the image. Per (image, channel block) task (the thread
pool's loop): output rows split into top border / interior / bottom border rows and
columns into left border / interior / right border columns; border rows and columns
have their in-bounds taps listed statically (padding taps skipped, nothing copied),
interior rows run a runtime loop and interior columns tiles of ``P`` pixels (``P x 16 /
width`` accumulators: AVX-512 8 x 1, AVX2 6 x 2, NEON 4 x 4, scalar 1 x 16).

Epilogue (depthwise): ``+ bias``, ``+ residual`` (blocked), the activation; the tail
block's channels ``>= C`` are stored as zeros (both kernels).
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.gemm import tile_shape
from nnc.backends.llvm.kernels.pack import CHANNEL_BLOCK
from nnc.backends.llvm.kernels.pool import Axis
from nnc.backends.llvm.kernels.simd import load_lanes, vec_ptr, vec_type, vector_activation
from nnc.backends.llvm.loops import for_range, gep, i64
from nnc.backends.llvm.parallel import parallel_for

Shape = tuple[int, ...]
B = CHANNEL_BLOCK


def _lin(b: ir.IRBuilder, base, coef: int, const: int):
    """``base * coef + const`` as an i64 (folded in Python when ``base`` is an int)."""
    if isinstance(base, int):
        return i64(base * coef + const)
    return b.add(b.mul(base, i64(coef)), i64(const))


class _Window:
    def __init__(self, module, kind, x_shape, kernel, strides, pads, dilations, act, flags):
        self.module, self.kind, self.act = module, kind, act
        self.has_bias, self.has_res = flags[:2]
        n, c, h, w = x_shape
        self.n, self.c, self.h, self.w = n, c, h, w
        (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
        pt, pl, pb, pr = pads
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        if kind == "max":  # ceil_mode outputs are passed in via ``out_hw``
            oh, ow = flags[2], flags[3]
        self.hax = Axis(h, kh, sh, pt, pb, dh, oh)
        self.wax = Axis(w, kw, sw, pl, pr, dw, ow)
        self.width = min(tile_shape(module).width, B)
        self.nv = B // self.width
        self.p = {16: 8, 8: 6, 4: 4}.get(self.width, 1)
        self.vec = vec_type(self.width)

    def tile(self, b, ptrs, oh, khs, ow0, cols, valid: int) -> None:
        """One tile: output row ``oh`` (int or i64), pixels ``ow0 + j`` with kernel rows
        ``khs`` and per-pixel kernel columns ``cols[j]``."""
        x, w, bias_v, res, out = ptrs
        hax, wax, vec, nv = self.hax, self.wax, self.vec, self.nv
        accs = [[None] * nv for _ in cols]
        fma = loops.intrinsic(self.module, f"llvm.fmuladd.v{self.width}f32", vec, [vec] * 3)
        vmax = loops.intrinsic(self.module, f"llvm.maxnum.v{self.width}f32", vec, [vec] * 2)
        for kh in khs:
            row = _lin(b, oh, hax.s * self.w * B, (kh * hax.d - hax.pb) * self.w * B)
            for kw in range(wax.k):
                users = [j for j, cj in enumerate(cols) if kw in cj]
                if not users:
                    continue
                wv = []
                if self.kind == "dw":
                    for v in range(nv):
                        idx = (kh * wax.k + kw) * B + v * self.width
                        wv.append(b.load(vec_ptr(b, w, idx, vec), align=4))
                for j in users:
                    col = _lin(b, ow0, wax.s * B, (j * wax.s + kw * wax.d - wax.pb) * B)
                    base = b.add(row, col)
                    for v in range(nv):
                        xv = b.load(vec_ptr(b, x, b.add(base, i64(v * self.width)), vec), align=4)
                        acc = accs[j][v]
                        if self.kind == "dw":
                            acc = b.call(
                                fma, [xv, wv[v], ir.Constant(vec, None) if acc is None else acc]
                            )
                        else:
                            acc = xv if acc is None else b.call(vmax, [acc, xv])
                        accs[j][v] = acc
        zero = ir.Constant(vec, None)
        for j in range(len(cols)):
            o_off = b.mul(b.add(_lin(b, oh, wax.out, 0), _lin(b, ow0, 1, j)), i64(B))
            for v in range(nv):
                val = zero if accs[j][v] is None else accs[j][v]
                off = b.add(o_off, i64(v * self.width))
                if bias_v is not None:
                    val = b.fadd(val, bias_v[v])
                if res is not None:
                    val = b.fadd(val, b.load(vec_ptr(b, res, off, vec), align=4))
                if self.kind == "dw":
                    val = vector_activation(b, self.module, val, *self.act)
                live = max(0, min(self.width, valid - v * self.width))
                if live < self.width:
                    keep = [i < live for i in range(self.width)]
                    val = b.select(ir.Constant(ir.VectorType(ir.IntType(1), self.width), keep),
                                   val, zero)  # fmt: skip
                b.store(val, vec_ptr(b, out, off, vec), align=4)

    def row(self, b, ptrs, oh, khs, valid: int) -> None:
        """All column tiles of output row ``oh``."""
        wax = self.wax
        lo, hi = wax.interior()
        for ow in range(lo):
            self.tile(b, ptrs, oh, khs, ow, [wax.taps(ow)], valid)
        full, rest = divmod(hi - lo, self.p)
        every = [list(range(wax.k))] * self.p
        if full:
            with for_range(b, 0, full, name="ct") as i:
                self.tile(b, ptrs, oh, khs, b.add(b.mul(i, i64(self.p)), i64(lo)), every, valid)
        if rest:
            self.tile(b, ptrs, oh, khs, lo + full * self.p, every[:rest], valid)
        for ow in range(hi, wax.out):
            self.tile(b, ptrs, oh, khs, ow, [wax.taps(ow)], valid)

    def block(self, b, ptrs, valid: int) -> None:
        """One (image, channel block) task with ``valid`` real channels."""
        hax = self.hax
        lo, hi = hax.interior()
        for oh in range(lo):
            self.row(b, ptrs, oh, hax.taps(oh), valid)
        if hi > lo:
            with for_range(b, lo, hi, name="oh") as oh:
                self.row(b, ptrs, oh, list(range(hax.k)), valid)
        for oh in range(hi, hax.out):
            self.row(b, ptrs, oh, hax.taps(oh), valid)

    def emit(self, name: str) -> KernelFn:
        n_args = (2 if self.kind == "max" else 3) + self.has_bias + self.has_res
        fn, b, args = loops.new_function(self.module, name, n_args)
        cb = -(-self.c // B)
        full, tail = divmod(self.c, B)
        plane_in, plane_out = self.h * self.w * B, self.hax.out * self.wax.out * B
        taps = self.hax.k * self.wax.k

        def task(b, lo, hi, a) -> None:
            x, out = a[0], a[-1]
            w = a[1] if self.kind == "dw" else None
            bias = a[2] if self.has_bias else None
            res = a[2 + self.has_bias] if self.has_res else None
            with for_range(b, lo, hi, name="t") as t:
                bi = b.urem(t, i64(cb))

                def body(valid: int) -> None:
                    bias_v = None
                    if bias is not None:
                        bias_v = []
                        for v in range(self.nv):
                            live = max(0, min(self.width, valid - v * self.width))
                            ptr = gep(b, bias, b.add(b.mul(bi, i64(B)), i64(v * self.width)))
                            bias_v.append(
                                load_lanes(b, self.module, self.vec, ptr, live)
                                if live
                                else ir.Constant(self.vec, None)
                            )
                    ptrs = (
                        gep(b, x, b.mul(t, i64(plane_in))),
                        None if w is None else gep(b, w, b.mul(bi, i64(taps * B))),
                        bias_v,
                        None if res is None else gep(b, res, b.mul(t, i64(plane_out))),
                        gep(b, out, b.mul(t, i64(plane_out))),
                    )
                    self.block(b, ptrs, valid)

                loops.full_or_tail(b, bi, full, B, tail, body)

        work = 2 * self.n * cb * plane_out * taps
        parallel_for(b, self.n * cb, list(args), task, work=work)
        b.ret_void()
        return KernelFn(fn)


def emit_depthwise_blocked(
    module, name, *, x_shape, w_shape, strides, pads, dilations, has_bias, has_residual, act
) -> KernelFn:
    """Depthwise conv (multiplier 1) on blocked activations; args ``x, w_c16, [bias],
    [residual], out`` (``x_shape`` logical NCHW, weight packed by
    ``pack.pack_conv_weights(w, 1)``)."""
    kernel = tuple(w_shape[2:])
    flags = (has_bias, has_residual)
    em = _Window(module, "dw", x_shape, kernel, strides, pads, dilations, act, flags)
    return em.emit(name)


def emit_max_pool_blocked(
    module, name, *, x_shape, out_hw, kernel, strides, pads, dilations
) -> KernelFn:
    """Max pool on blocked activations; args ``x, out`` (``x_shape`` logical NCHW,
    ``out_hw`` the output size, ceil mode included)."""
    flags = (False, False, *out_hw)
    em = _Window(module, "max", x_shape, kernel, strides, pads, dilations, None, flags)
    return em.emit(name)
