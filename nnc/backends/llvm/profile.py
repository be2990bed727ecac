"""Per-step timing of a model library built with ``--profile``.

The entry function reads ``clock_gettime(CLOCK_MONOTONIC)`` before and after every kernel
call and adds the nanoseconds to a static per-step counter (atomic adds, so concurrent
runs only mix their sums); every completed run bumps a run counter. Two ABI functions
read and clear the table:

    int32_t PFX_profile(const char **names, double *ms);   /* returns the step count */
    void    PFX_profile_reset(void);

``PFX_profile`` fills ``names[i]`` (static strings ``"<op>:<node name or #index>"``) and
``ms[i]`` (mean milliseconds per run of step ``i`` since the last reset, 0 before any
run) when the pointers are non-null. Libraries built without ``--profile`` have no timing
code and no ``PFX_profile*`` symbols. Needs an OS clock: hosted targets only.
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm.loops import I8, I8_PTR, I32, I64, VOID
from nnc.backends.llvm.program import LoweredModel, Step
from nnc.backends.llvm.targets import Target
from nnc.errors import InvalidOptionError

#: The profiling ABI functions (without the ``PFX_`` prefix).
PROFILE_FUNCTIONS = ("profile", "profile_reset")
_CLOCK_MONOTONIC = 1
F64 = ir.DoubleType()


def step_name(index: int, step: Step) -> str:
    """The profile name of a step: ``op:node`` (or ``op#index`` without a node name)."""
    node = getattr(step, "name", "")
    return f"{step.label}:{node}" if node else f"{step.label}#{index}"


class Profiler:
    """Emits the timing code of one entry function and the profile ABI."""

    def __init__(self, module: ir.Module, prefix: str, target: Target, model: LoweredModel):
        if target.object_only:
            raise InvalidOptionError(f"--profile needs an OS clock; {target.name} has none")
        self.m, self.prefix, self.model = module, prefix, model
        self.size_t = ir.IntType(target.pointer_bits)
        n = max(len(model.steps), 1)
        self.ns = self._global("ns", ir.ArrayType(I64, n))
        self.runs = self._global("runs", I64)
        self.timespec = ir.LiteralStructType([self.size_t, self.size_t])
        name = "clock_gettime"
        self.clock = self.m.globals.get(name) or ir.Function(
            self.m, ir.FunctionType(I32, [I32, self.timespec.as_pointer()]), name
        )

    def _global(self, name: str, ty: ir.Type) -> ir.GlobalVariable:
        gv = ir.GlobalVariable(self.m, ty, f"{self.prefix}.prof.{name}")
        gv.initializer = ir.Constant(ty, None)
        gv.linkage = "internal"
        gv.align = 8
        return gv

    def now(self, b: ir.IRBuilder) -> ir.Value:
        """Nanoseconds of the monotonic clock (i64)."""
        with b.goto_entry_block():
            ts = b.alloca(self.timespec, name="ts")
        b.call(self.clock, [ir.Constant(I32, _CLOCK_MONOTONIC), ts])
        zero = ir.Constant(I32, 0)
        sec = b.load(b.gep(ts, [zero, ir.Constant(I32, 0)]))
        nsec = b.load(b.gep(ts, [zero, ir.Constant(I32, 1)]))
        if self.size_t.width < 64:
            sec, nsec = b.sext(sec, I64), b.sext(nsec, I64)
        return b.add(b.mul(sec, ir.Constant(I64, 1_000_000_000)), nsec)

    def add(self, b: ir.IRBuilder, step: int, start: ir.Value) -> None:
        """Add the time since ``start`` to step ``step``'s counter."""
        slot = b.gep(self.ns, [ir.Constant(I32, 0), ir.Constant(I32, step)])
        b.atomic_rmw("add", slot, b.sub(self.now(b), start), "monotonic")

    def finish_run(self, b: ir.IRBuilder) -> None:
        """Count one completed run."""
        b.atomic_rmw("add", self.runs, ir.Constant(I64, 1), "monotonic")

    def _cstring(self, i: int, text: str) -> ir.Constant:
        data = bytearray(text.encode() + b"\0")
        gv = ir.GlobalVariable(self.m, ir.ArrayType(I8, len(data)), f"{self.prefix}.prof.n{i}")
        gv.initializer = ir.Constant(gv.value_type, data)
        gv.global_constant = True
        gv.linkage = "private"
        return gv.gep([ir.Constant(I32, 0), ir.Constant(I32, 0)])

    def emit_api(self) -> None:
        """Define ``PFX_profile`` and ``PFX_profile_reset``."""
        steps = self.model.steps
        names = [self._cstring(i, step_name(i, s)) for i, s in enumerate(steps)]
        table_ty = ir.ArrayType(I8_PTR, max(len(names), 1))
        table = ir.GlobalVariable(self.m, table_ty, f"{self.prefix}.prof.names")
        table.initializer = ir.Constant(table_ty, names or [ir.Constant(I8_PTR, None)])
        table.global_constant = True
        table.linkage = "private"
        count = len(steps)
        zero = ir.Constant(I32, 0)

        fn = ir.Function(
            self.m,
            ir.FunctionType(I32, [I8_PTR.as_pointer(), F64.as_pointer()]),
            f"{self.prefix}_profile",
        )
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        out_names, out_ms = fn.args
        runs = b.load_atomic(self.runs, "monotonic", 8)
        denom = b.fmul(b.sitofp(runs, F64), ir.Constant(F64, 1e6))
        has_runs = b.icmp_signed(">", runs, ir.Constant(I64, 0))
        for i in range(count):
            with b.if_then(b.icmp_unsigned("!=", out_names, ir.Constant(out_names.type, None))):
                name = b.load(b.gep(table, [zero, ir.Constant(I32, i)]))
                b.store(name, b.gep(out_names, [ir.Constant(I32, i)]))
            with b.if_then(b.icmp_unsigned("!=", out_ms, ir.Constant(out_ms.type, None))):
                ns = b.load_atomic(b.gep(self.ns, [zero, ir.Constant(I32, i)]), "monotonic", 8)
                ms = b.select(has_runs, b.fdiv(b.sitofp(ns, F64), denom), ir.Constant(F64, 0.0))
                b.store(ms, b.gep(out_ms, [ir.Constant(I32, i)]))
        b.ret(ir.Constant(I32, count))

        reset = ir.Function(self.m, ir.FunctionType(VOID, []), f"{self.prefix}_profile_reset")
        reset.attributes.add("nounwind")
        rb = ir.IRBuilder(reset.append_basic_block("entry"))
        for i in range(count):
            slot = rb.gep(self.ns, [zero, ir.Constant(I32, i)])
            rb.store_atomic(ir.Constant(I64, 0), slot, "monotonic", 8)
        rb.store_atomic(ir.Constant(I64, 0), self.runs, "monotonic", 8)
        rb.ret_void()
