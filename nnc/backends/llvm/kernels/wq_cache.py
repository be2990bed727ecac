"""Weight-only convs that decode once (``nn.wq_conv``, compute-bound layers).

When a conv does many multiply-adds per weight (many output pixels), decoding the
compressed weight per run or per tile (``wq_conv.py``) cannot beat the float32 kernels,
and Winograd (which float32 convs use on large 3x3 planes) needs transformed weights.
So here the ``wq16`` weight (``wq_pack.py``) is decoded ONCE, by the first run, into a
zero-initialised internal global (``.bss``: no file bytes) in the exact layout of the
float32 kernel, and every run then calls that unchanged float32 kernel:

* ``"direct"``: the ``c16`` layout (``pack.py``; the decoded ``wq16`` blocks are exactly
  it) for ``conv2d.emit_conv2d(w_layout="c16")`` (the direct or pointwise kernel, as in
  float32);
* ``"winograd2"`` / ``"winograd4"``: ``U = G g G^T`` in the ``(T*T, M, C)`` layout of
  ``winograd.emit_winograd_conv`` (computed in float32 from the exactly decoded weight;
  the compile-time float32 path rounds the float64 product instead: ~1 ulp of U).

Trade-off: the library file keeps the compressed weight, but the process holds the
float32 (Winograd: T*T/9 times larger) weight of these layers after the first run.
Caches of 2 MiB or more are 2 MiB aligned (address space only) and, on Linux, advised
as transparent huge pages before the decode touches them (``_advise_huge``).

First-run protocol (``PFX_run_with_workspace`` may run concurrently on several threads):
an internal i32 state word, 0 = not decoded, 1 = decoding, 2 = ready. Every run loads it
(acquire); unless 2, the caller tries ``cmpxchg 0 -> 1``: the winner decodes (serially,
so the bytes do not depend on the thread count) and stores 2 (release); losers
``sched_yield`` until they read 2. The decode is deterministic and never fails, so the
word only moves forward. (A signal handler re-entering a run on the decoding thread
would wait forever: run functions are not async-signal-safe.)

``cache_algo`` picks the layers (pure function of the shapes): Winograd where the
float32 ``select-conv-algo{algo=auto}`` cost rule would pick it, else ``"direct"`` when
the conv has at least ``CACHE_PIXELS`` output pixels per weight (N*OH*OW), else None
(``wq_conv.py`` decodes per tile / in registers: bandwidth-bound layers).

Decoders: the decode step is pluggable. ``emit_wq_conv_cached`` takes a ``WQLayout``
(the ``wq16`` decoder, wrapped as ``WQ16Decoder``) or any hashable object with
``blocks``, ``k`` and ``emit_blocks(b, w, blk0, nblk, dst)`` (write decoded blocks
``blk0 .. blk0+nblk-1`` as ``dst[t][k][16]`` float32: the c16 panel), e.g. the sparse
bitmask / codebook decoders of ``compact_conv.py`` (pruned or clustered float32 convs).

Args: ``x, w_compressed, [bias], [residual], out, [scratch]``; same results as the
float32 kernel on the decoded weight.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.conv2d import emit_conv2d
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.qisa import module_target
from nnc.backends.llvm.kernels.winograd import emit_winograd_conv, sandwich
from nnc.backends.llvm.kernels.wq_decode import GroupParams, decode_row, row_ptr
from nnc.backends.llvm.kernels.wq_gemm import group_loops
from nnc.backends.llvm.kernels.wq_pack import BLOCK, WQLayout
from nnc.backends.llvm.loops import F32, I8_PTR, I32, VOID, for_range, gep, i64, load_at, store_at

F32P = F32.as_pointer()
#: Output pixels per weight (N*OH*OW) from which a non-Winograd conv decodes once.
CACHE_PIXELS = 16
ALGOS = ("direct", "winograd2", "winograd4")


def winograd_ok(shape: ConvShape) -> bool:
    """Whether the Winograd kernel applies (3x3, stride 1, dilation 1, group 1)."""
    unit = (shape.sh, shape.sw, shape.dh, shape.dw, shape.group) == (1, 1, 1, 1, 1)
    return unit and (shape.kh, shape.kw) == (3, 3)


def cache_algo(shape: ConvShape) -> str | None:
    """The float32 algorithm a decode-once conv runs, or None (module docstring)."""
    from nnc.passes._conv_algos import ConvShape as AlgoShape
    from nnc.passes._conv_algos import estimate_cost
    from nnc.passes.select_conv_algo import SelectConvAlgoPass

    if shape.group != 1:
        return None
    s = AlgoShape(shape.n, shape.c, shape.h, shape.w, shape.m, shape.kh, shape.kw, shape.oh,
                  shape.ow, (shape.pt, shape.pl, shape.pb, shape.pr))  # fmt: skip
    if winograd_ok(shape):
        costs = {a: estimate_cost(s, a) for a in ALGOS}
        best = min(costs, key=lambda a: costs[a])
        if best != "direct" and costs[best] <= SelectConvAlgoPass.margin * costs["direct"]:
            return best
    return "direct" if shape.n * shape.oh * shape.ow >= CACHE_PIXELS else None


def decode_block(b, lay: WQLayout, gp: GroupParams, wp, blk, dst0) -> None:
    """``dst0[k][16]`` = decoded ``wq16`` block ``blk`` (exactly the contract decode)."""

    def body(g, k0, count):
        sv, zv = gp.at(b, blk, g)
        with for_range(b, 0, count, name="dk") as kk:
            k = b.add(k0, kk)
            v = decode_row(b, lay.storage, row_ptr(b, lay, wp, blk, k), sv, zv)
            ptr = b.bitcast(gep(b, dst0, b.mul(k, i64(BLOCK))), v.type.as_pointer())
            b.store(v, ptr, align=4)

    group_loops(b, lay, body)


def decode_blocks(b, lay: WQLayout, wp, blk0, nblk, dst) -> None:
    """``dst[t][k][16]`` = decoded ``wq16`` block ``blk0 + t`` for ``t < nblk`` (runtime
    loop; exactly the contract decode)."""
    gp = GroupParams(b, lay, wp)
    with for_range(b, 0, nblk, name="dblk") as t:
        decode_block(b, lay, gp, wp, b.add(blk0, t), gep(b, dst, b.mul(t, i64(lay.k * BLOCK))))


@dataclass(frozen=True)
class WQ16Decoder:
    """The ``wq16`` decoder (``wq_pack.py``) in the decoder protocol (module docstring)."""

    lay: WQLayout

    @property
    def blocks(self) -> int:
        return self.lay.blocks

    @property
    def k(self) -> int:
        return self.lay.k

    def emit_blocks(self, b, wp, blk0, nblk, dst) -> None:
        decode_blocks(b, self.lay, wp, blk0, nblk, dst)


def _winograd_weights(b, dec, g: ConvShape, tile: int, wp, u, panel) -> None:
    """``u[xi, m, c] = (G w[m, c] G^T)[xi]`` (float32), block by block via ``panel``."""
    from nnc.ir.ops_conv_algos import winograd_matrices

    _, gm, _ = winograd_matrices(tile)
    tt = (tile + 2) ** 2
    with for_range(b, 0, dec.blocks, name="wblk") as blk:
        dec.emit_blocks(b, wp, blk, i64(1), panel)
        m0 = b.mul(blk, i64(BLOCK))
        valid = b.select(b.icmp_signed("<", b.sub(i64(g.m), m0), i64(BLOCK)),
                         b.sub(i64(g.m), m0), i64(BLOCK))  # fmt: skip
        with for_range(b, 0, valid, name="lane") as lane, for_range(b, 0, g.c, name="c") as c:
            base = b.add(b.mul(c, i64(9 * BLOCK)), lane)
            w3 = [[load_at(b, panel, b.add(base, i64((3 * i + j) * BLOCK))) for j in range(3)]
                  for i in range(3)]  # fmt: skip
            ut = sandwich(b, gm, w3)
            dst = b.add(b.mul(b.add(m0, lane), i64(g.c)), c)
            t = tile + 2
            for xi in range(tt):
                store_at(b, ut[xi // t][xi % t], u, b.add(dst, i64(xi * g.m * g.c)))


def _sched_yield(module: ir.Module) -> ir.Function:
    fn = module.globals.get("sched_yield")
    return fn if fn is not None else ir.Function(module, ir.FunctionType(I32, []), "sched_yield")


#: Caches of at least this many bytes are 2 MiB aligned and advised as huge pages.
HUGE = 1 << 21
MADV_HUGEPAGE = 14


def _advise_huge(b, module, cache) -> None:
    """Linux: ``madvise(MADV_HUGEPAGE)`` on the whole 2 MiB pages inside ``cache`` before
    the decode first touches them (streaming a large float32 weight through 4 KiB pages
    costs ~10 % on 512-channel layers; the float32 model's weights are file-backed).
    Advice only: a failure (e.g. THP disabled) changes nothing."""
    nbytes = cache.type.pointee.count * 4
    target = module_target(module)
    if nbytes < HUGE or "linux" not in target.triple:
        return
    size_t = ir.IntType(target.pointer_bits)
    fn = module.globals.get("madvise") or ir.Function(
        module, ir.FunctionType(I32, [I8_PTR, size_t, I32]), "madvise"
    )
    start = b.ptrtoint(cache, size_t)
    lo = b.and_(b.add(start, ir.Constant(size_t, HUGE - 1)), ir.Constant(size_t, -HUGE))
    hi = b.and_(b.add(start, ir.Constant(size_t, nbytes)), ir.Constant(size_t, -HUGE))
    with b.if_then(b.icmp_unsigned("<", lo, hi)):
        b.call(fn, [b.inttoptr(lo, I8_PTR), b.sub(hi, lo), ir.Constant(I32, MADV_HUGEPAGE)])


def _emit_once(module, name: str, decode: ir.Function, cache) -> ir.Function:
    """``void name(i8* w, i8* scratch)``: ``decode(w, cache, scratch)`` exactly once per
    process (state-word protocol of the module docstring); returns when decoded."""
    state = ir.GlobalVariable(module, I32, f"{name}.state")
    state.initializer = ir.Constant(I32, 0)
    state.linkage = "internal"
    state.align = 4
    fn = ir.Function(module, ir.FunctionType(VOID, [I8_PTR, I8_PTR]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ready = b.icmp_unsigned("==", b.load_atomic(state, "acquire", 4), ir.Constant(I32, 2))
    done = fn.append_basic_block("done")
    try_bb = fn.append_basic_block("try")
    b.cbranch(ready, done, try_bb)
    b.position_at_end(try_bb)
    pair = b.cmpxchg(state, ir.Constant(I32, 0), ir.Constant(I32, 1), "acq_rel", "acquire")
    work, wait = fn.append_basic_block("decode"), fn.append_basic_block("wait")
    b.cbranch(b.extract_value(pair, 1), work, wait)
    b.position_at_end(work)
    _advise_huge(b, module, cache)
    b.call(decode, [fn.args[0], b.bitcast(cache, F32P), fn.args[1]])
    b.store_atomic(ir.Constant(I32, 2), state, "release", 4)
    b.branch(done)
    b.position_at_end(wait)
    b.call(_sched_yield(module), [])
    again = b.icmp_unsigned("==", b.load_atomic(state, "acquire", 4), ir.Constant(I32, 2))
    b.cbranch(again, done, wait)
    b.position_at_end(done)
    b.ret_void()
    return fn


#: Per LLVM module: shared (float32 kernel, decode function, cache floats, scratch bytes)
#: by layer geometry, so identical layers with different weights share their code.
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shared(module, algo: str, g: ConvShape, lay, epi: dict, act) -> tuple:
    """The float32 kernel and ``void dec(i8* w, float* cache, i8* scratch)`` of a layer
    geometry (emitted once per module, named ``nnc.wqc.<digest>.*``)."""
    key = (algo, g, lay, tuple(sorted(epi.items())), tuple(act))
    table = _SHARED.setdefault(module, {})
    if key in table:
        return table[key]
    base = "nnc.wqc." + hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    x_shape = (g.n, g.c, g.h, g.w)
    pads = (g.pt, g.pl, g.pb, g.pr)
    panel_bytes = 0
    if algo == "direct":
        floats = lay.blocks * BLOCK * lay.k
        inner = emit_conv2d(module, f"{base}.f32", x_shape=x_shape,
                            w_shape=(g.m, g.c, g.kh, g.kw), strides=(g.sh, g.sw), pads=pads,
                            dilations=(g.dh, g.dw), group=1, activation=act[0],
                            act_alpha=act[1], act_beta=act[2], w_layout="c16",
                            **epi)  # fmt: skip
    else:
        tile = int(algo[-1])
        tt = (tile + 2) ** 2
        floats = tt * g.m * g.c
        inner = emit_winograd_conv(module, f"{base}.f32", x_shape=x_shape,
                                   u_shape=(tt, g.m, g.c), tile=tile, pads=pads,
                                   activation=act[0], act_alpha=act[1], act_beta=act[2],
                                   **epi)  # fmt: skip
        panel_bytes = lay.k * BLOCK * 4
    dec = ir.Function(module, ir.FunctionType(VOID, [I8_PTR, F32P, I8_PTR]), f"{base}.dec")
    dec.linkage = "internal"
    dec.attributes.add("nounwind")
    dec.attributes.add("noinline")
    b = ir.IRBuilder(dec.append_basic_block("entry"))
    w, dst, scr = dec.args
    if algo == "direct":
        lay.emit_blocks(b, w, i64(0), i64(lay.blocks), dst)
    else:
        _winograd_weights(b, lay, g, int(algo[-1]), w, dst, b.bitcast(scr, F32P))
    b.ret_void()
    table[key] = (inner, dec, floats, max(inner.scratch_bytes, panel_bytes))
    return table[key]


def emit_wq_conv_cached(
    module: ir.Module,
    name: str,
    algo: str,
    shape: ConvShape,
    lay,
    *,
    has_bias: bool,
    has_residual: bool,
    act: tuple[str, float, float],
) -> KernelFn:
    """Decode-once weight-only conv running the float32 ``algo`` kernel (module doc). The
    kernel ``name`` owns the cache of ONE weight (its state word and ``.bss`` buffer); the
    float32 kernel and the decode code are shared by layers of the same geometry. ``lay``:
    a ``WQLayout`` or a decoder (module docstring)."""
    if algo not in ALGOS:
        raise ValueError(f"wq_conv: unknown decode-once algorithm {algo!r}")
    if isinstance(lay, WQLayout):
        lay = WQ16Decoder(lay)
    epi = dict(has_bias=has_bias, has_residual=has_residual)
    inner, dec, floats, scratch = _shared(module, algo, shape, lay, epi, act)
    arr = ir.ArrayType(F32, floats)
    cache = ir.GlobalVariable(module, arr, f"{name}.wcache")
    cache.initializer = ir.Constant(arr, None)  # zeroinitializer: .bss
    cache.linkage = "internal"
    cache.align = HUGE if 4 * floats >= HUGE else 64  # .bss: costs address space only
    once = _emit_once(module, f"{name}.once", dec, cache)
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=scratch > 0)
    scr = args[-1] if scratch else ir.Constant(I8_PTR, None)
    b.call(once, [b.bitcast(args[1], I8_PTR), scr])
    call = [args[0], b.bitcast(cache, F32P), *args[2:n_args]]
    if inner.scratch_bytes:
        call.append(scr)
    b.call(inner.fn, call)
    b.ret_void()
    return KernelFn(fn, scratch)
