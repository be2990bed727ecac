"""Kernels of the blocked channel layout (NCHWc, ``nnc/ir/ops_blocked.py``).

* ``emit_to_blocked``: ``x (N, C, H, W)`` -> ``(N, ceil(C/B), H*W, B)``, zero tail.
* ``emit_from_blocked``: the inverse, keeping the first ``C`` channels.
* ``emit_conv2d_blocked``: ``nn.conv_blocked`` = the direct conv of ``conv_direct.py`` on
  ``c16``-packed weights with blocked input and output (``B = 16`` only), or the
  depthwise kernel of ``window_blocked.py``.
* ``emit_max_pool_blocked`` (from ``window_blocked.py``): ``nn.max_pool_blocked``.

The transforms are vectorized copies: per (image, channel block) task and per chunk of
``V`` pixels (``V`` = the target's vector width, at most ``B``), ``V`` channel rows of
``V`` pixels are loaded (masked for the last pixel chunk), transposed in registers
(``simd.transpose``) and stored as ``V`` pixel rows of ``V`` channels, or the other way
round. The tail block (``C % B`` channels) is its own loop with the missing channel rows
as zero constants (to_blocked) or not stored (from_blocked). Tasks run on the thread
pool (memory bound: ``work`` counts bytes moved).
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.conv_direct import emit_conv2d_direct
from nnc.backends.llvm.kernels.gemm import tile_shape
from nnc.backends.llvm.kernels.pack import CHANNEL_BLOCK
from nnc.backends.llvm.kernels.simd import load_lanes, store_lanes, transpose, vec_type
from nnc.backends.llvm.kernels.window_blocked import (
    emit_depthwise_blocked,
    emit_max_pool_blocked,
)
from nnc.backends.llvm.loops import for_range, gep, i64
from nnc.backends.llvm.parallel import parallel_for

Shape = tuple[int, ...]


def _width(module: ir.Module, block: int) -> int:
    width = min(tile_shape(module).width, block)
    while block % width:
        width //= 2
    return max(width, 1)


def _emit_transform(module, name: str, shape: Shape, block: int, to: bool) -> KernelFn:
    n, c, h, w = shape
    hw = h * w
    cb = -(-c // block)
    vw = _width(module, block)
    vec = vec_type(vw)
    fn, b, (x, out) = loops.new_function(module, name, 2)
    full, tail = divmod(c, block)

    def chunk(b, src_blk, dst_blk, p0, count: int, chans: int) -> None:
        """Pixels ``[p0, p0 + count)`` of one block (``chans`` real channels)."""
        plain, blk = (src_blk, dst_blk) if to else (dst_blk, src_blk)
        for g0 in range(0, block, vw):
            live = max(0, min(vw, chans - g0))
            if to:
                rows = []
                for r in range(vw):
                    if r < live:
                        ptr = gep(b, plain, b.add(i64((g0 + r) * hw), p0))
                        rows.append(load_lanes(b, module, vec, ptr, count))
                    else:
                        rows.append(ir.Constant(vec, None))
                for i, val in enumerate(transpose(b, rows)[:count]):
                    ptr = gep(b, blk, b.add(b.mul(b.add(p0, i64(i)), i64(block)), i64(g0)))
                    store_lanes(b, module, val, ptr, vw)
            else:
                if live == 0:
                    continue
                undef = ir.Constant(vec, ir.Undefined)
                rows = []
                for i in range(vw):
                    if i < count:
                        off = b.add(b.mul(b.add(p0, i64(i)), i64(block)), i64(g0))
                        rows.append(load_lanes(b, module, vec, gep(b, blk, off), vw))
                    else:
                        rows.append(undef)
                for r, val in enumerate(transpose(b, rows)[:live]):
                    ptr = gep(b, plain, b.add(i64((g0 + r) * hw), p0))
                    store_lanes(b, module, val, ptr, count)

    def block_body(b, src_blk, dst_blk, chans: int) -> None:
        body, rest = divmod(hw, vw)
        if body:
            with for_range(b, 0, body, name="px") as i:
                chunk(b, src_blk, dst_blk, b.mul(i, i64(vw)), vw, chans)
        if rest:
            chunk(b, src_blk, dst_blk, i64(body * vw), rest, chans)

    def task(b, lo, hi, a) -> None:
        xa, oa = a
        with for_range(b, lo, hi, name="t") as t:
            ni, bi = b.udiv(t, i64(cb)), b.urem(t, i64(cb))
            plain_off = b.add(b.mul(ni, i64(c * hw)), b.mul(bi, i64(block * hw)))
            blk_off = b.mul(t, i64(block * hw))
            s_off, d_off = (plain_off, blk_off) if to else (blk_off, plain_off)
            src_blk, dst_blk = gep(b, xa, s_off), gep(b, oa, d_off)
            if not tail:
                block_body(b, src_blk, dst_blk, block)
            else:
                with b.if_else(b.icmp_unsigned("==", bi, i64(full))) as (then, otherwise):
                    with then:
                        block_body(b, src_blk, dst_blk, tail)
                    with otherwise:
                        block_body(b, src_blk, dst_blk, block)

    parallel_for(b, n * cb, [x, out], task, work=8 * n * cb * block * hw)
    b.ret_void()
    return KernelFn(fn)


def emit_to_blocked(module: ir.Module, name: str, *, shape: Shape, block: int) -> KernelFn:
    """``nn.to_blocked``: args ``x (N, C, H, W), out (N, ceil(C/block), H, W, block)``."""
    return _emit_transform(module, name, tuple(shape), block, True)


def emit_from_blocked(module: ir.Module, name: str, *, shape: Shape, block: int) -> KernelFn:
    """``nn.from_blocked``: args ``x (N, ceil(C/block), H, W, block), out (N, C, H, W)``;
    ``shape`` is the NCHW output shape."""
    return _emit_transform(module, name, tuple(shape), block, False)


def emit_conv2d_blocked(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    w_shape: Shape,
    has_bias: bool,
    strides: Shape,
    pads: Shape,
    dilations: Shape,
    group: int,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    has_residual: bool = False,
    block: int = CHANNEL_BLOCK,
    w_layout: str = "c16",
    pack_group: int = 1,
) -> KernelFn:
    """``nn.conv_blocked``: args ``x (blocked), w_packed, [bias], [residual], out``;
    ``x_shape`` is the logical NCHW input shape; the weight is packed by
    ``pack.pack_conv_weights(w, pack_group=1)`` (depthwise too). Blocks of 16 only.
    Depthwise convs (``group = C``) use ``window_blocked.py``."""
    if block != CHANNEL_BLOCK or w_layout != "c16" or pack_group != 1:
        raise ValueError(f"conv_blocked: native code needs block {CHANNEL_BLOCK}, got {block}")
    act = (activation, act_alpha, act_beta)
    if group != 1:
        return emit_depthwise_blocked(
            module, name, x_shape=x_shape, w_shape=w_shape, strides=strides, pads=pads,
            dilations=dilations, has_bias=has_bias, has_residual=has_residual, act=act,
        )  # fmt: skip
    return emit_conv2d_direct(
        module, name, x_shape=x_shape, w_shape=w_shape, strides=strides, pads=pads,
        dilations=dilations, group=group, has_bias=has_bias, has_residual=has_residual,
        act=act, x_blocked=True, out_blocked=True,
    )  # fmt: skip


__all__ = [
    "emit_conv2d_blocked",
    "emit_from_blocked",
    "emit_max_pool_blocked",
    "emit_to_blocked",
]
