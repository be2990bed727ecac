"""Sliding windows over NCHW planes read in place, one vector of output columns at a time.

Shared by the depthwise conv (``depthwise.py``) and the pooling kernels (``pool.py``):
no padded copy of the input. Per axis (``pool.Axis``: size, kernel, stride, pads,
dilation, output length) the output rows split into border rows (some kernel rows
``kh`` fall outside the input: each gets its static tap list) and an interior range run
as a runtime loop. Each output row is cut into chunks of ``width`` columns
(``row_chunks``); per chunk and kernel column ``kw`` the input run
``x[row, q0*s - pad + kw*d + i*s]`` (``i < width``) is one vector load for stride 1 and
one ``s*width``-lane load plus an even-lane shuffle otherwise. Lanes of a load that fall
outside the input row get a static mask (masked loads never touch those addresses, so
reading "before" a row or past the buffer end is safe) and the caller's padding value;
chunks whose loads are all in bounds ("interior" chunks) use plain loads and, when
several are in a row, a runtime loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels.simd import vec_ptr
from nnc.backends.llvm.loops import I32, for_range, gep, i64

I1 = ir.IntType(1)

#: Widest load (in lanes) a strided run may use: strides above ``MAX_LANES // width``
#: use narrower vectors (see ``run_width``).
MAX_LANES = 64


@dataclass(frozen=True)
class Chunk:
    """``count`` output columns from ``q0``; ``masks[kw]`` is None when every lane of tap
    ``kw``'s load is inside the row, else the per-lane in-bounds flags (taps with no
    lane inside are left out of ``taps``)."""

    q0: int
    count: int
    taps: tuple[int, ...]
    masks: tuple[tuple[bool, ...] | None, ...]

    @property
    def interior(self) -> bool:
        return all(m is None for m in self.masks)


def run_width(width: int, stride: int) -> int:
    """Vector width for a strided run: ``width`` unless ``width * stride`` exceeds
    ``MAX_LANES`` (then the largest power of two that fits, at least 1)."""
    while width > 1 and width * stride > MAX_LANES:
        width //= 2
    return width


def row_chunks(wax, width: int) -> list[Chunk]:
    """The chunks of one output row along ``wax`` (a ``pool.Axis``)."""
    lanes = width * wax.s
    chunks = []
    for q0 in range(0, wax.out, width):
        taps, masks = [], []
        for kw in range(wax.k):
            start = q0 * wax.s - wax.pb + kw * wax.d
            inside = tuple(0 <= start + j < wax.size for j in range(lanes))
            used = [inside[i * wax.s] for i in range(min(width, wax.out - q0))]
            if not any(used):
                continue
            taps.append(kw)
            masks.append(None if all(inside) else inside)
        chunks.append(Chunk(q0, min(width, wax.out - q0), tuple(taps), tuple(masks)))
    return chunks


def wide_mask(wax, q0: int, kw: int, width: int) -> tuple[bool, ...] | None:
    """In-bounds flags of all ``width * s`` lanes of tap ``kw``'s run for the chunk at
    output column ``q0`` (None when every lane is inside the row)."""
    start = q0 * wax.s - wax.pb + kw * wax.d
    inside = tuple(0 <= start + j < wax.size for j in range(width * wax.s))
    return None if all(inside) else inside


def load_run(b, module, vec, ptr, stride: int, mask, pad: ir.Value) -> ir.Value:
    """``vec.count`` floats at ``ptr[0], ptr[stride], ...``; lanes of the (``stride *
    count``-lane) load whose ``mask`` flag is False read as ``pad`` (a splat of ``vec``)."""
    width = vec.count
    wide = ir.VectorType(vec.element, width * stride)
    if mask is None:
        v = b.load(vec_ptr(b, ptr, 0, wide), align=4)
    else:
        name = f"llvm.masked.load.v{wide.count}f32.p0"
        mask_t = ir.VectorType(I1, wide.count)
        fn = loops.intrinsic(module, name, wide, [wide.as_pointer(), I32, mask_t, wide])
        bits = ir.Constant(mask_t, [int(f) for f in mask])
        pad_w = pad if stride == 1 else _widen(b, pad, wide)
        v = b.call(fn, [vec_ptr(b, ptr, 0, wide), ir.Constant(I32, 4), bits, pad_w])
    if stride == 1:
        return v
    lanes = ir.Constant(ir.VectorType(I32, width), [i * stride for i in range(width)])
    return b.shuffle_vector(v, ir.Constant(wide, ir.Undefined), lanes)


def _widen(b, splat_vec: ir.Value, wide: ir.VectorType) -> ir.Value:
    """A splat vector stretched to ``wide`` lanes (lane 0 repeated)."""
    mask = ir.Constant(ir.VectorType(I32, wide.count), [0] * wide.count)
    return b.shuffle_vector(splat_vec, ir.Constant(splat_vec.type, ir.Undefined), mask)


#: ``chunk_body(b, q0, chunk, loads)``: ``q0`` the first output column (i64 value) and
#: ``loads(kh, kw)`` the input run of tap ``(kh, kw)`` for this chunk;
#: ``loads.wide(kh, kw)`` is the whole ``stride * width``-lane run of that tap before the
#: stride shuffle (lanes outside the row read as ``pad``).
ChunkBody = Callable[[ir.IRBuilder, ir.Value, Chunk, Callable[[int, int], ir.Value]], None]


def emit_plane(b, module, hax, wax, vec, x, pad: ir.Value, khs_body) -> None:
    """Every output row of one plane of ``x`` (pointer to the input plane).

    ``khs_body(khs, oh)`` returns the ``ChunkBody`` of output row ``oh`` (i64), whose
    in-bounds kernel rows are ``khs``. ``pad`` (a splat vector) is what lanes outside the
    input read as.
    """
    lo, hi = hax.interior()
    chunks = row_chunks(wax, vec.count)
    for oh in list(range(lo)) + list(range(hi, hax.out)):
        _emit_row(b, module, hax, wax, vec, x, pad, i64(oh), hax.taps(oh), chunks, khs_body)
    if hi > lo:
        with for_range(b, lo, hi, name="oh") as oh:
            _emit_row(b, module, hax, wax, vec, x, pad, oh, range(hax.k), chunks, khs_body)


def _emit_row(b, module, hax, wax, vec, x, pad, oh, khs, chunks, khs_body) -> None:
    body = khs_body(tuple(khs), oh)
    ih0 = b.sub(b.mul(oh, i64(hax.s)), i64(hax.pb))
    rows = {kh: gep(b, x, b.mul(b.add(ih0, i64(kh * hax.d)), i64(wax.size))) for kh in khs}

    def emit_chunk(q0: ir.Value, ch: Chunk) -> None:
        col0 = b.sub(b.mul(q0, i64(wax.s)), i64(wax.pb))
        masks = dict(zip(ch.taps, ch.masks, strict=True))

        def loads(kh: int, kw: int) -> ir.Value:
            ptr = b.gep(rows[kh], [b.add(col0, i64(kw * wax.d))])
            return load_run(b, module, vec, ptr, wax.s, masks[kw], pad)

        def wide(kh: int, kw: int) -> ir.Value:
            ptr = b.gep(rows[kh], [b.add(col0, i64(kw * wax.d))])
            mask = None if ch.interior else wide_mask(wax, ch.q0, kw, vec.count)
            wide_t = ir.VectorType(vec.element, vec.count * wax.s)
            return load_run(b, module, wide_t, ptr, 1, mask, _widen(b, pad, wide_t))

        loads.wide = wide
        body(b, q0, ch, loads)

    i = 0
    while i < len(chunks):
        ch = chunks[i]
        j = i
        while j < len(chunks) and chunks[j].interior and chunks[j].count == vec.count:
            j += 1
        if j - i >= 2:  # a run of full interior chunks: runtime loop
            with for_range(b, i, j, name="q") as qi:
                emit_chunk(b.mul(qi, i64(vec.count)), ch)
            i = j
            continue
        emit_chunk(i64(ch.q0), ch)
        i += 1
