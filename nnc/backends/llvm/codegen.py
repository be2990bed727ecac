"""Build the one ``llvmlite.ir`` module of a model: weights, kernels, the C ABI entry points.

Contents (``PFX`` is the symbol prefix):

* one private constant global of raw bytes per distinct weight (64-byte aligned),
  printed as a hex-escaped ``c"..."`` string, never per-element float constants;
* one internal ``noinline`` function per distinct ``KernelSpec`` (plus its helpers);
* ``PFX_run_with_workspace(ws, inputs, outputs)``: null checks, aligns ``ws`` up to 64
  bytes, then calls the kernels in order with pointers into the caller's inputs and
  outputs, the weights and the workspace (offsets from ``plan.py``);
* ``PFX_run`` over a static zero-initialised workspace (not reentrant);
* the introspection functions of DESIGN.md (sizes, names, ranks, shapes, dtypes);
* ``PFX_set_num_threads``/``PFX_num_threads`` and, when kernels have parallel loops and
  ``threads != 1``, the thread pool (``threadpool.py``); with ``threads == 1`` no
  threading code at all and both functions return 1;
* with ``profile``: ``clock_gettime`` around every kernel call, accumulated per step into
  a static table read by ``PFX_profile(names, ms)`` / reset by ``PFX_profile_reset()``
  (``profile.py``); without it, no timing code.

Return codes of the run functions: 0 ok, 1 null workspace (when one is needed), 2 null
``inputs`` or input pointer, 3 null ``outputs`` or output pointer. Every symbol other
than the ``PFX_*`` API has internal linkage, so models with different prefixes link
into one program.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from nnc.backends.llvm.loops import F32_PTR, I8, I8_PTR, I32, I64
from nnc.backends.llvm.lower import emitter_function
from nnc.backends.llvm.parallel import set_module_threads, uses_threads
from nnc.backends.llvm.plan import ALIGNMENT, WorkspacePlan, align_up, plan_workspace
from nnc.backends.llvm.profile import PROFILE_FUNCTIONS, Profiler
from nnc.backends.llvm.program import Buffer, IOSpec, KernelSpec, LoweredModel
from nnc.backends.llvm.targets import Target
from nnc.backends.llvm.threadpool import MAX_THREADS, emit_single_thread_api, emit_thread_pool
from nnc.backends.llvm.weights_obj import EXTERNAL_WEIGHTS_MIN_BYTES
from nnc.errors import UnsupportedOpError

ERR_NULL_WORKSPACE = 1
ERR_NULL_INPUT = 2
ERR_NULL_OUTPUT = 3

#: The C ABI functions (without the ``PFX_`` prefix), in header order.
API_FUNCTIONS = (
    "run",
    "run_with_workspace",
    "workspace_size",
    "num_inputs",
    "num_outputs",
    "input_name",
    "output_name",
    "input_rank",
    "output_rank",
    "input_shape",
    "output_shape",
    "input_dtype",
    "output_dtype",
    "set_num_threads",
    "num_threads",
)

_HEX_ESCAPES = np.array([b"\\%02X" % i for i in range(256)], dtype="S3")


def hex_escape(data: bytes) -> str:
    """``data`` as the body of an LLVM ``c"..."`` string, every byte as ``\\XX`` (fast)."""
    return _HEX_ESCAPES[np.frombuffer(data, dtype=np.uint8)].tobytes().decode("ascii")


class RawBytes(ir.Constant):
    """An ``[n x i8]`` constant from raw bytes, formatted with numpy instead of per byte."""

    def __init__(self, data: bytes):
        super().__init__(ir.ArrayType(I8, len(data)), None)
        self.data = data

    def _get_reference(self) -> str:
        return f'c"{hex_escape(self.data)}"'


@dataclass
class GeneratedModule:
    """The LLVM IR text of a model and the facts the build reports."""

    ir_text: str
    plan: WorkspacePlan
    workspace_size: int
    kernel_count: int
    weight_bytes: int
    weights_blob: bytes | None = None
    weights_symbol: str = ""


def _private_global(module: ir.Module, name: str, init: ir.Constant, align: int = 0):
    g = ir.GlobalVariable(module, init.type, name)
    g.initializer = init
    g.global_constant = True
    g.linkage = "private"
    g.unnamed_addr = True
    if align:
        g.align = align
    return g


class _Codegen:
    def __init__(
        self,
        model: LoweredModel,
        target: Target,
        prefix: str,
        threads: int,
        profile: bool,
        external_weights: bool = False,
    ):
        self.model, self.target, self.prefix = model, target, prefix
        self.threads = 1 if target.object_only else threads
        self.profile = profile
        self.module = ir.Module(name=prefix)
        set_module_threads(self.module, self.threads)
        self.module.triple = target.triple
        self.module.nnc_target = target  # int8 kernels pick their ISA from it (qisa.py)
        self.module.data_layout = str(target.target_machine().target_data)
        self.size_t = ir.IntType(target.pointer_bits)
        self.kernels: dict[KernelSpec, ir.Function] = {}
        self.scratch: dict[KernelSpec, int] = {}
        self.weights: list[ir.Value] = []  # one [n x i8]* constant per weight
        self.weight_bytes = 0
        self.weights_blob: bytes | None = None
        self.external_weights = external_weights and not target.object_only

    def api(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        fn = ir.Function(self.module, ir.FunctionType(ret, args), f"{self.prefix}_{name}")
        fn.attributes.add("nounwind")
        return fn

    def generate(self) -> GeneratedModule:
        self.emit_kernels()
        self.emit_threading()
        plan = plan_workspace(self.model, lambda k: self.scratch[k])
        self.emit_weights()
        ws_size = plan.peak_bytes + (ALIGNMENT - 1 if plan.peak_bytes else 0)
        run_ws = self.emit_run_with_workspace(plan)
        self.emit_run(run_ws, plan.peak_bytes)
        self.emit_introspection(ws_size)
        self.internalize()
        return GeneratedModule(
            str(self.module),
            plan,
            ws_size,
            len(self.kernels),
            self.weight_bytes,
            self.weights_blob,
            self.weights_symbol,
        )

    # -- kernels and weights ---------------------------------------------------------

    def emit_kernels(self) -> None:
        labels = {}
        for step in self.model.steps:
            labels.setdefault(step.kernel, step.label)
        for i, spec in enumerate(self.model.kernel_specs()):
            emit = emitter_function(spec.emitter)
            name = f"{self.prefix}.k{i}.{spec.emitter}"
            try:
                kfn = emit(self.module, name, **spec.kwargs_dict())
            except (ValueError, NotImplementedError) as err:
                raise UnsupportedOpError(
                    f"op '{labels[spec]}': the {spec.emitter} kernel rejects "
                    f"{spec.kwargs_dict()}: {err}"
                ) from None
            kfn.fn.attributes.add("noinline")
            self.kernels[spec] = kfn.fn
            self.scratch[spec] = kfn.scratch_bytes

    def emit_threading(self) -> None:
        """The pool when some kernel has a parallel loop, else the single-thread API."""
        if self.threads != 1 and uses_threads(self.module):
            emit_thread_pool(
                self.module,
                self.prefix,
                size_bits=self.target.pointer_bits,
                arch=self.target.arch,
                default_threads=min(self.threads, MAX_THREADS),
            )
        else:
            emit_single_thread_api(self.module, self.prefix)

    @property
    def weights_symbol(self) -> str:
        return f"{self.prefix}.weights" if self.weights_blob is not None else ""

    def emit_weights(self) -> None:
        """One private constant per weight, or (large models, ``external_weights``) one
        ``external hidden`` blob defined by a separate object (``weights_obj.py``)."""
        arrays = [
            np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False)
            for a in self.model.weights
        ]
        self.weight_bytes = sum(a.nbytes for a in arrays)
        if self.external_weights and self.weight_bytes >= EXTERNAL_WEIGHTS_MIN_BYTES:
            offsets, total = [], 0
            for a in arrays:
                offsets.append(total)
                total = align_up(total + a.nbytes)
            blob = np.zeros(total, np.uint8)
            for a, off in zip(arrays, offsets, strict=True):
                blob[off : off + a.nbytes] = np.frombuffer(a.tobytes(), np.uint8)
            self.weights_blob = blob.tobytes()
            gv = ir.GlobalVariable(self.module, ir.ArrayType(I8, total), self.weights_symbol)
            gv.storage_class = "hidden"
            gv.global_constant = True
            gv.align = 64
            zero = ir.Constant(I32, 0)
            self.weights = [gv.gep([zero, ir.Constant(I64, off)]) for off in offsets]
            return
        for i, data in enumerate(arrays):
            self.weights.append(
                _private_global(self.module, f"{self.prefix}.w{i}", RawBytes(data.tobytes()), 64)
            )

    # -- run functions -----------------------------------------------------------------

    def emit_run_with_workspace(self, plan: WorkspacePlan) -> ir.Function:
        ptr_array = I8_PTR.as_pointer()
        fn = self.api("run_with_workspace", I32, [I8_PTR, ptr_array, ptr_array])
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        io_ptrs = self.emit_null_checks(fn, b, plan.peak_bytes > 0)
        # Align the caller's workspace up to 64 bytes (workspace_size includes the slack).
        ws = fn.args[0]
        pad = b.and_(b.sub(ir.Constant(I64, 0), b.ptrtoint(ws, I64)), ir.Constant(I64, 63))
        base = b.gep(ws, [pad])

        def pointer(buf: Buffer) -> ir.Value:
            if buf.parent is not None:  # a view: its parent's pointer + offset
                at = b.gep(b.bitcast(pointer(buf.parent), I8_PTR), [ir.Constant(I64, buf.offset)])
                return b.bitcast(at, F32_PTR)
            if buf.kind in ("input", "output"):
                return io_ptrs[(buf.kind, buf.index)]
            if buf.kind == "weight":
                return b.bitcast(self.weights[buf.index], F32_PTR)
            return b.bitcast(b.gep(base, [ir.Constant(I64, plan.offset_of(buf))]), F32_PTR)

        profiler = None
        if self.profile:
            profiler = Profiler(self.module, self.prefix, self.target, self.model)
        for t, step in enumerate(self.model.steps):
            kfn = self.kernels[step.kernel]
            args = [pointer(x) for x in (*step.inputs, *step.outputs)]
            if len(kfn.args) == len(args) + 1:  # the kernel takes scratch
                off = plan.scratch_offsets.get(t, 0)
                args.append(b.gep(base, [ir.Constant(I64, off)]))
            start = profiler.now(b) if profiler else None
            b.call(kfn, args)
            if profiler:
                profiler.add(b, t, start)
        if profiler:
            profiler.finish_run(b)
            profiler.emit_api()
        b.ret(ir.Constant(I32, 0))
        return fn

    def emit_null_checks(
        self, fn: ir.Function, b: ir.IRBuilder, need_workspace: bool
    ) -> dict[tuple[str, int], ir.Value]:
        """Return early with an error code on null pointers; load the I/O pointers."""
        ws, ins, outs = fn.args
        fails = {}
        for code in (ERR_NULL_WORKSPACE, ERR_NULL_INPUT, ERR_NULL_OUTPUT):
            fails[code] = fn.append_basic_block(f"fail{code}")
            ir.IRBuilder(fails[code]).ret(ir.Constant(I32, code))

        def check(ptr: ir.Value, code: int) -> None:
            ok = fn.append_basic_block("ok")
            b.cbranch(b.icmp_unsigned("==", ptr, ir.Constant(ptr.type, None)), fails[code], ok)
            b.position_at_end(ok)

        if need_workspace:
            check(ws, ERR_NULL_WORKSPACE)
        io_ptrs: dict[tuple[str, int], ir.Value] = {}
        for kind, table, count, code in (
            ("input", ins, len(self.model.inputs), ERR_NULL_INPUT),
            ("output", outs, len(self.model.outputs), ERR_NULL_OUTPUT),
        ):
            if count:
                check(table, code)
            for i in range(count):
                p = b.load(b.gep(table, [ir.Constant(I64, i)], inbounds=True))
                check(p, code)
                io_ptrs[(kind, i)] = b.bitcast(p, F32_PTR)
        return io_ptrs

    def emit_run(self, run_ws: ir.Function, peak: int) -> None:
        fn = self.api("run", I32, [I8_PTR.as_pointer(), I8_PTR.as_pointer()])
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ws: ir.Value = ir.Constant(I8_PTR, None)
        if peak:
            g = ir.GlobalVariable(self.module, ir.ArrayType(I8, peak), f"{self.prefix}.workspace")
            g.initializer = ir.Constant(g.value_type, None)  # zeroinitializer: .bss
            g.linkage = "internal"
            g.align = 64
            ws = b.bitcast(g, I8_PTR)
        b.ret(b.call(run_ws, [ws, *fn.args]))

    # -- introspection -----------------------------------------------------------------

    def emit_introspection(self, ws_size: int) -> None:
        self.constant_fn("workspace_size", ir.Constant(self.size_t, ws_size))
        for kind, specs in (("input", self.model.inputs), ("output", self.model.outputs)):
            self.constant_fn(f"num_{kind}s", ir.Constant(I32, len(specs)))
            names = [
                self.cstring(f"{self.prefix}.{kind}_name{i}", s.name) for i, s in enumerate(specs)
            ]
            self.table_fn(f"{kind}_name", I8_PTR, names)
            self.table_fn(
                f"{kind}_rank",
                I32,
                [ir.Constant(I32, len(s.shape)) for s in specs],
                default=ir.Constant(I32, -1),
            )
            shapes = [
                self.shape_array(f"{self.prefix}.{kind}_shape{i}", s) for i, s in enumerate(specs)
            ]
            self.table_fn(f"{kind}_shape", I64.as_pointer(), shapes)
            self.table_fn(
                f"{kind}_dtype",
                I32,
                [ir.Constant(I32, s.dtype_code) for s in specs],
                default=ir.Constant(I32, 0),
            )

    def constant_fn(self, name: str, value: ir.Constant) -> None:
        fn = self.api(name, value.type, [])
        ir.IRBuilder(fn.append_basic_block("entry")).ret(value)

    def cstring(self, name: str, text: str) -> ir.Constant:
        data = bytearray(text.encode() + b"\0")
        g = _private_global(self.module, name, ir.Constant(ir.ArrayType(I8, len(data)), data))
        return g.gep([ir.Constant(I32, 0), ir.Constant(I32, 0)])

    def shape_array(self, name: str, spec: IOSpec) -> ir.Constant:
        dims = list(spec.shape) or [1]  # rank 0: a valid pointer that is never read
        init = ir.Constant(ir.ArrayType(I64, len(dims)), [ir.Constant(I64, d) for d in dims])
        g = _private_global(self.module, name, init, 8)
        return g.gep([ir.Constant(I32, 0), ir.Constant(I32, 0)])

    def table_fn(
        self,
        name: str,
        elem: ir.Type,
        values: list[ir.Constant],
        default: ir.Constant | None = None,
    ) -> None:
        """``T PFX_name(int32_t i)``: ``values[i]``, or ``default`` (null) out of range."""
        default = default if default is not None else ir.Constant(elem, None)
        fn = self.api(name, elem, [I32])
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if not values:
            b.ret(default)
            return
        arr = ir.ArrayType(elem, len(values))
        table = _private_global(
            self.module, f"{self.prefix}.{name}_table", ir.Constant(arr, values)
        )
        hit, miss = fn.append_basic_block("hit"), fn.append_basic_block("miss")
        idx = fn.args[0]
        b.cbranch(b.icmp_unsigned("<", idx, ir.Constant(I32, len(values))), hit, miss)
        b.position_at_end(hit)
        ptr = b.gep(table, [ir.Constant(I32, 0), b.zext(idx, I64)], inbounds=True)
        b.ret(b.load(ptr))
        b.position_at_end(miss)
        b.ret(default)

    def internalize(self) -> None:
        """Give every non-API definition internal linkage (no clashes across prefixes)."""
        names = API_FUNCTIONS + (PROFILE_FUNCTIONS if self.profile else ())
        public = {f"{self.prefix}_{n}" for n in names}
        for gv in self.module.global_values:
            if gv.name in public or gv.name.startswith("llvm."):
                continue
            if isinstance(gv, ir.GlobalVariable) and gv.initializer is None:
                continue  # a declaration (the external weights blob)
            if isinstance(gv, ir.Function):
                if not gv.is_declaration:
                    gv.linkage = "internal"
            elif gv.linkage not in ("private", "internal"):
                gv.linkage = "internal"


def generate_module(
    model: LoweredModel,
    target: Target,
    prefix: str,
    *,
    threads: int = 1,
    profile: bool = False,
    external_weights: bool = False,
) -> GeneratedModule:
    """The LLVM IR of ``model`` for ``target`` with C ABI symbols ``prefix_*``.

    ``threads``: 1 = serial code, no threading; N > 1 = a pool of N threads (caller
    included) by default; 0 = all CPUs of the running process. Bare-metal targets are
    always serial. ``profile`` adds per-step timing (see the module docstring).
    ``external_weights``: models with at least ``EXTERNAL_WEIGHTS_MIN_BYTES`` of weights
    (hosted targets) reference one blob ``PFX.weights`` defined by a separate object;
    ``GeneratedModule.weights_blob`` holds its bytes.
    """
    return _Codegen(model, target, prefix, threads, profile, external_weights).generate()
