"""Float32 convs whose weight the library stores compressed (``compact_conv`` kernel).

Pruned (many zeros) or clustered (few distinct values) conv weights are stored in a
``compact_pack.py`` format (sparse bitmask + values, 4/8-bit codebook indices, or
both) and decoded ONCE, by the first run, into the float32 layout the direct (``c16``)
or Winograd kernel reads, through the decode-once machinery of ``wq_cache.py``
(``.bss`` cache, state word + cmpxchg; this module only supplies the decoder). Every
later run calls the unchanged float32 kernel, so results equal the float32 kernel's on
the same weight (decoding is bit exact; Winograd's ``U`` is computed in float32: ~1 ulp).

Lowering (``lower.py``) uses it for an ``nn.conv`` (group 1, constant weight, direct
``c16`` layout rule) marked ``nn.compact_weight`` by the ``compact-weights`` pass, when
a format still pays (``compact_pack.choose_format``).

Args: ``x, w_compact (u8), [bias], [residual], out, [scratch]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.compact_pack import BLOCK, FORMATS, sections
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.wq_cache import ALGOS, emit_wq_conv_cached, winograd_ok
from nnc.backends.llvm.loops import F32, I32, I64, f32, for_range, i64

I8 = ir.IntType(8)
#: The decode-once algorithm when the kernel spec asks "auto" (tests override it).
ALGO = "auto"


def spec_algo(shape: ConvShape) -> str:
    """``ALGO`` unless "auto"; else Winograd where the float32 cost rule picks it
    (``wq_cache.cache_algo``), else "direct"."""
    from nnc.backends.llvm.kernels.wq_cache import cache_algo

    if ALGO != "auto":
        return ALGO if ALGO == "direct" or winograd_ok(shape) else "direct"
    algo = cache_algo(shape)
    return algo if algo is not None and algo != "direct" else "direct"


@dataclass(frozen=True)
class CompactDecoder:
    """Decoder of a ``compact_pack`` format (``wq_cache`` decoder protocol)."""

    fmt: str
    blocks: int
    k: int

    def emit_blocks(self, b: ir.IRBuilder, wp, blk0, nblk, dst) -> None:
        """``dst[t][k][16]`` = decoded block ``blk0 + t`` (a call of the shared decode
        function of this format and geometry)."""
        b.call(self._function(b.module), [wp, blk0, nblk, dst])

    def _function(self, module: ir.Module) -> ir.Function:
        """``void f(i8* w, i64 blk0, i64 nblk, float* dst)`` (emitted once per module)."""
        name = f"nnc.compact.{self.fmt}.{self.blocks}x{self.k}.dec"
        fn = module.globals.get(name)
        if fn is not None:
            return fn
        fty = ir.FunctionType(ir.VoidType(), [I8.as_pointer(), I64, I64, F32.as_pointer()])
        fn = ir.Function(module, fty, name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.attributes.add("noinline")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        wp, blk0, nblk, dst = fn.args
        pvar = b.alloca(I64, name="p")
        sparse = self.fmt.startswith("sparse")
        off = sections(self.fmt, self.blocks, self.k)
        per = self.k * BLOCK

        def sec(name: str, ty: ir.Type):
            return b.bitcast(b.gep(wp, [i64(off[name])], inbounds=True), ty.as_pointer())

        with for_range(b, 0, nblk, name="cblk") as t:
            blk = b.add(blk0, t)
            e0 = b.mul(blk, i64(per))
            if sparse:
                start = b.load(b.gep(sec("offsets", I32), [blk], inbounds=True))
                b.store(b.zext(start, I64), pvar)
            out0 = b.mul(t, i64(per))
            with for_range(b, 0, per, name="ce") as i:
                e = b.add(e0, i)
                if sparse:
                    byte = b.load(b.gep(sec("mask", I8), [b.lshr(e, i64(3))], inbounds=True))
                    sh = b.trunc(b.and_(e, i64(7)), I8)
                    bit = b.and_(b.lshr(byte, sh), ir.Constant(I8, 1))
                    keep = b.trunc(bit, ir.IntType(1))
                    p = b.load(pvar)
                    v = b.select(keep, self._fetch(b, sec, b.select(keep, p, i64(0))), f32(0.0))
                    b.store(b.add(p, b.zext(bit, I64)), pvar)
                else:
                    v = self._fetch(b, sec, e)
                b.store(v, b.gep(dst, [b.add(out0, i)], inbounds=True))
        b.ret_void()
        return fn

    def _fetch(self, b: ir.IRBuilder, sec, q):
        """The float of stored element ``q`` (value, or codebook entry of its index)."""
        if self.fmt == "sparse":
            return b.load(b.gep(sec("values", F32), [q], inbounds=True))
        if self.fmt.endswith("8"):
            idx = b.load(b.gep(sec("values", I8), [q], inbounds=True))
        else:
            byte = b.load(b.gep(sec("values", I8), [b.lshr(q, i64(1))], inbounds=True))
            sh = b.trunc(b.shl(b.and_(q, i64(1)), i64(2)), I8)
            idx = b.and_(b.lshr(byte, sh), ir.Constant(I8, 15))
        return b.load(b.gep(sec("codebook", F32), [b.zext(idx, I64)], inbounds=True))


def emit_compact_conv(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w_shape,
    fmt: str,
    algo: str,
    has_bias: bool,
    has_residual: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    group: int = 1,
    w_layout: str = "compact",
    weight_id: int = 0,
) -> KernelFn:
    """Decode-once conv on a compact weight (module docstring). ``algo``: "direct",
    "winograd2" or "winograd4" (Winograd only where it applies). ``weight_id`` keeps
    specs of different weights apart: each kernel owns one weight's cache."""
    del weight_id
    if group != 1 or w_layout != "compact" or fmt not in FORMATS:
        raise ValueError(f"compact_conv: needs group 1 and a compact format, got {fmt!r}")
    shape = ConvShape.checked(x_shape, w_shape, strides, pads, dilations, group)
    if algo not in ALGOS or (algo != "direct" and not winograd_ok(shape)):
        raise ValueError(f"compact_conv: algorithm {algo!r} does not apply")
    dec = CompactDecoder(fmt, -(-shape.m // BLOCK), shape.c * shape.kh * shape.kw)
    return emit_wq_conv_cached(module, name, algo, shape, dec, has_bias=has_bias,
                               has_residual=has_residual,
                               act=(activation, act_alpha, act_beta))  # fmt: skip
