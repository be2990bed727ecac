"""MaxPool / AveragePool (2-D, NCHW, ONNX semantics as in onnxruntime) and global pooling.

The output plane is split, per axis, into border positions (some window taps fall
outside the input; they are few and emitted one by one with their static tap lists)
and an interior range where every tap is in bounds: a runtime loop. Along a row, output
columns are computed a vector at a time by ``window.emit_plane`` (strided runs are one
wide load plus a shuffle; taps outside the input are masked lanes reading the padding
value: ``lowest`` for max, 0 for average). Average divisors are static per (row, column),
a constant vector per chunk. Strides too large for a vector run (``window.run_width``
below 4 lanes) use the scalar loops of ``_emit_row``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import fmax
from nnc.backends.llvm.kernels.gemm import entry_alloca, tile_shape
from nnc.backends.llvm.kernels.simd import splat, store_lanes, vec_type
from nnc.backends.llvm.kernels.window import emit_plane, run_width
from nnc.backends.llvm.loops import I32, f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for

Shape = tuple[int, ...]


def pool_out_size(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool) -> int:
    """Output length of one axis (onnxruntime rule: with ``ceil_mode`` a last window that
    would start inside the end padding is dropped)."""
    span = size + pb + pe - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + pb:
        out -= 1
    return max(out, 0)


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a pooling window: input size, kernel, stride, pads, dilation."""

    size: int
    k: int
    s: int
    pb: int
    pe: int
    d: int
    out: int

    def taps(self, o: int) -> list[int]:
        """Kernel taps of output position ``o`` that land inside the input."""
        return [t for t in range(self.k) if 0 <= o * self.s - self.pb + t * self.d < self.size]

    def padded_count(self, o: int) -> int:
        """Taps of ``o`` inside the explicitly padded input (ceil overhang excluded)."""
        lo, hi = -self.pb, self.size + self.pe
        return sum(lo <= o * self.s - self.pb + t * self.d < hi for t in range(self.k))

    def interior(self) -> tuple[int, int]:
        """Half-open range of outputs whose taps are all inside the input."""
        lo = -(-self.pb // self.s)
        last = self.size - 1 + self.pb - (self.k - 1) * self.d
        hi = last // self.s + 1 if last >= 0 else 0
        lo, hi = min(lo, self.out), min(hi, self.out)
        return lo, max(lo, hi)

    def count(self, o: int, include_pad: bool) -> int:
        """Average divisor contribution of output ``o``."""
        return self.padded_count(o) if include_pad else len(self.taps(o))


@dataclass(frozen=True)
class _Pool:
    kind: str  # "max" or "avg"
    hax: Axis
    wax: Axis
    include_pad: bool

    def combine(self, b, module, acc, v):
        """Fold one tap ``v`` into ``acc`` (``None`` for the first tap)."""
        if acc is None:
            return v
        return fmax(b, module, acc, v) if self.kind == "max" else b.fadd(acc, v)

    def finish(self, acc, b, count: int):
        """Turn the folded value into the output (average: scale by ``1/count``)."""
        if acc is None:
            return f32(-3.4028234663852886e38 if self.kind == "max" else 0.0)  # ORT: lowest()
        if self.kind == "avg":
            return b.fmul(acc, f32(1.0 / count))
        return acc


def _window(b, module, p: _Pool, x, ih0, khs, iw0, kws):
    """Fold ``x[ih0 + kh*dh, iw0 + kw*dw]`` over the given taps (``ih0, iw0`` are values)."""
    acc = None
    for kh in khs:
        row = gep(b, x, b.mul(b.add(ih0, i64(kh * p.hax.d)), i64(p.wax.size)))
        for kw in kws:
            acc = p.combine(b, module, acc, load_at(b, row, b.add(iw0, i64(kw * p.wax.d))))
    return acc


def _emit_row(b, module, p: _Pool, x, y, oh, khs, count_h) -> None:
    """Emit every output column of output row ``oh`` (an i64 value) whose taps are ``khs``."""
    wax = p.wax
    ih0 = b.sub(b.mul(oh, i64(p.hax.s)), i64(p.hax.pb))
    yrow = gep(b, y, b.mul(oh, i64(wax.out)))
    lo, hi = wax.interior()
    for ow in list(range(lo)) + list(range(hi, wax.out)):
        iw0 = i64(ow * wax.s - wax.pb)
        acc = _window(b, module, p, x, ih0, khs, iw0, wax.taps(ow))
        store_at(b, p.finish(acc, b, count_h * wax.count(ow, p.include_pad)), yrow, ow)
    if hi > lo:
        with for_range(b, lo, hi, name="ow") as ow:
            iw0 = b.sub(b.mul(ow, i64(wax.s)), i64(wax.pb))
            acc = _window(b, module, p, x, ih0, khs, iw0, range(wax.k))
            store_at(b, p.finish(acc, b, count_h * wax.k), yrow, ow)


def _vector_plane(b, module, p: _Pool, vec: ir.VectorType, xp, yp) -> None:
    """One output plane, a vector of output columns at a time (``window.py``)."""
    hax, wax = p.hax, p.wax
    lowest = -3.4028234663852886e38  # ORT: numeric_limits<float>::lowest()
    pad = splat(b, f32(lowest if p.kind == "max" else 0.0), vec)
    vmax = loops.intrinsic(module, f"llvm.maxnum.v{vec.count}f32", vec, [vec, vec])

    separable = p.kind == "max" and wax.s > 1 and wax.d == 1 and wax.k > 1

    def row_body(khs, oh):
        yrow = gep(b, yp, b.mul(oh, i64(wax.out)))
        count_h = len(khs)  # interior rows: every kernel row
        if p.include_pad and isinstance(oh, ir.Constant):  # border row: padded rows count
            count_h = hax.padded_count(oh.constant)

        def chunk(b, q0, ch, loads) -> None:
            if separable and khs:
                _max_chunk_separable(b, module, p, vec, khs, ch, loads, yrow, q0)
                return
            acc = None
            for kh in khs:
                for kw in ch.taps:
                    v = loads(kh, kw)
                    acc = v if acc is None else (
                        b.call(vmax, [acc, v]) if p.kind == "max" else b.fadd(acc, v)
                    )  # fmt: skip
            if acc is None:
                acc = pad
            elif p.kind == "avg":
                acc = b.fmul(acc, _inv_counts(p, count_h, ch, vec))
            store_lanes(b, module, acc, gep(b, yrow, q0), ch.count)

        return chunk

    emit_plane(b, module, hax, wax, vec, xp, pad, row_body)


def _max_chunk_separable(b, module, p: _Pool, vec, khs, ch, loads, yrow, q0) -> None:
    """A strided max chunk with the kernel rows reduced first: per run start ``j * s``
    (``j < ceil(k / s)``) the ``s * width``-lane runs of every kernel row are maxed
    (vertical), then tap ``kw = j * s + r`` is lane phase ``r`` of run ``j`` (one shuffle
    per tap instead of one per (kh, kw)). Lanes outside the row read as ``lowest``, which
    never wins a max; the result equals the tap-by-tap max."""
    s, k = p.wax.s, p.wax.k
    wide_t = ir.VectorType(vec.element, vec.count * s)
    vmax_w = loops.intrinsic(module, f"llvm.maxnum.v{wide_t.count}f32", wide_t, [wide_t, wide_t])
    vmax = loops.intrinsic(module, f"llvm.maxnum.v{vec.count}f32", vec, [vec, vec])
    runs = []
    for j in range(-(-k // s)):
        m = None
        for kh in khs:
            v = loads.wide(kh, j * s)
            m = v if m is None else b.call(vmax_w, [m, v])
        runs.append(m)
    acc = None
    undef = ir.Constant(wide_t, ir.Undefined)
    for kw in range(k):
        j, r = divmod(kw, s)
        lanes = ir.Constant(ir.VectorType(I32, vec.count), [i * s + r for i in range(vec.count)])
        v = b.shuffle_vector(runs[j], undef, lanes)
        acc = v if acc is None else b.call(vmax, [acc, v])
    store_lanes(b, module, acc, gep(b, yrow, q0), ch.count)


def _inv_counts(p: _Pool, count_h, ch, vec) -> ir.Constant:
    """``1 / divisor`` per lane of an average chunk whose rows contribute ``count_h``.

    Interior chunks (possibly in a runtime loop, ``ch`` is then the first of the run)
    have every tap in bounds; border lanes count their own taps (lanes past the row end
    are never stored)."""
    if ch.interior:
        return ir.Constant(vec, [1.0 / (count_h * p.wax.k)] * vec.count)
    lanes = []
    for i in range(vec.count):
        cnt = count_h * p.wax.count(min(ch.q0 + i, p.wax.out - 1), p.include_pad)
        lanes.append(1.0 / cnt if cnt else 0.0)
    return ir.Constant(vec, lanes)


def _emit_pool(module, name, x_shape, p: _Pool) -> KernelFn:
    """Shared driver: loop over planes (in parallel), then border rows and the interior."""
    n, c, h, w = x_shape
    hax = p.hax
    fn, b, (x, y) = loops.new_function(module, name, 2)
    lo, hi = hax.interior()
    width = run_width(tile_shape(module).width, p.wax.s)
    while width > 4 and width // 2 >= p.wax.out:
        width //= 2

    def planes(b: ir.IRBuilder, first, last, args) -> None:
        x, y = args
        with for_range(b, first, last, name="plane") as pl:
            xp = gep(b, x, b.mul(pl, i64(h * w)))
            yp = gep(b, y, b.mul(pl, i64(hax.out * p.wax.out)))
            if width >= 4:
                _vector_plane(b, module, p, vec_type(width), xp, yp)
                return
            for oh in list(range(lo)) + list(range(hi, hax.out)):
                count = hax.count(oh, p.include_pad)
                _emit_row(b, module, p, xp, yp, i64(oh), hax.taps(oh), count)
            if hi > lo:
                with for_range(b, lo, hi, name="oh") as oh:
                    _emit_row(b, module, p, xp, yp, oh, range(hax.k), hax.k)

    work = n * c * hax.out * p.wax.out * hax.k * p.wax.k
    parallel_for(b, n * c, [x, y], planes, work=work)
    b.ret_void()
    return KernelFn(fn)


def _axes(x_shape, kernel, strides, pads, dilations, ceil_mode) -> tuple[Axis, Axis]:
    out = []
    for i in range(2):
        size, k, s, d = x_shape[2 + i], kernel[i], strides[i], dilations[i]
        pb, pe = pads[i], pads[2 + i]
        out.append(Axis(size, k, s, pb, pe, d, pool_out_size(size, k, s, pb, pe, d, ceil_mode)))
    return out[0], out[1]


def emit_max_pool2d(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    kernel: Shape,
    strides: Shape,
    pads: Shape,
    dilations: Shape,
    ceil_mode: bool,
) -> KernelFn:
    """ONNX MaxPool over NCHW; args ``x, out``; ``pads = (top, left, bottom, right)``.

    Padding never wins the max (taps outside the input are skipped).
    """
    hax, wax = _axes(x_shape, kernel, strides, pads, dilations, ceil_mode)
    return _emit_pool(module, name, x_shape, _Pool("max", hax, wax, False))


def emit_avg_pool2d(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    kernel: Shape,
    strides: Shape,
    pads: Shape,
    ceil_mode: bool,
    count_include_pad: bool,
) -> KernelFn:
    """ONNX AveragePool over NCHW; args ``x, out``.

    Divisor: in-bounds taps, or with ``count_include_pad`` taps inside the explicitly
    padded input (the ``ceil_mode`` overhang never counts).
    """
    hax, wax = _axes(x_shape, kernel, strides, pads, (1, 1), ceil_mode)
    return _emit_pool(module, name, x_shape, _Pool("avg", hax, wax, bool(count_include_pad)))


def emit_global_pool(module: ir.Module, name: str, *, x_shape: Shape, kind: str) -> KernelFn:
    """GlobalAveragePool / GlobalMaxPool ``(N, C, *spatial) -> (N, C, 1, ...)``; args ``x, out``.

    ``kind`` is ``"avg"`` or ``"max"``.
    """
    if kind not in ("avg", "max"):
        raise ValueError(f"global pool kind must be 'avg' or 'max', got {kind!r}")
    n, c = x_shape[:2]
    size = 1
    for s in x_shape[2:]:
        size *= s
    fn, b, (x, y) = loops.new_function(module, name, 2)
    fast = ("fast",)

    def planes(b: ir.IRBuilder, first, last, args) -> None:
        x, y = args
        with for_range(b, first, last, name="plane") as pl:
            xp = gep(b, x, b.mul(pl, i64(size)))
            acc = entry_alloca(b, loops.F32)
            b.store(f32(float("-inf") if kind == "max" else 0.0), acc)
            with for_range(b, 0, size, name="i") as i:
                v = load_at(b, xp, i)
                old = b.load(acc)
                new = fmax(b, module, old, v) if kind == "max" else b.fadd(old, v, flags=fast)
                b.store(new, acc)
            res = b.load(acc)
            if kind == "avg":
                res = b.fmul(res, f32(1.0 / size)) if size else f32(float("nan"))
            store_at(b, res, y, pl)

    parallel_for(b, n * c, [x, y], planes, work=n * c * size)
    b.ret_void()
    return KernelFn(fn)
