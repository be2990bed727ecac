"""The thread pool of a model library, emitted as LLVM IR over pthreads and atomics.

``emit_thread_pool(module, ...)`` defines the dispatcher that ``parallel.parallel_for``
calls, ``void nnc.parallel_for(void (*body)(i8* ctx, i64 lo, i64 hi), i8* ctx, i64 n)``,
plus the pool it drives. Everything is internal to the model object (one pool per
prefix), so the library stays one self-contained object and links with ``-lpthread``
(part of libc since glibc 2.34).

Contract of ``nnc.parallel_for``: calls ``body`` on disjoint ranges covering ``[0, n)``
exactly once each, from the calling thread and the pool's workers, and returns when all
are done. It never allocates, except that the first parallel call of the process (or the
first after the thread count grew) creates the worker threads (``pthread_create``); they
live until the thread count shrinks or the library is unloaded.

Design:

* ``threads`` (the current setting, caller included) starts at the compile-time value
  or, when that is 0 ("all cores"), at the number of CPUs in the process's affinity mask
  (resolved on first use). ``PFX_set_num_threads`` changes it; shrinking joins the
  surplus workers, growing creates workers lazily on the next parallel call.
* One job at a time: a dispatcher takes the pool with a compare-and-swap on ``busy``.
  If the pool is busy (a concurrent ``PFX_run_with_workspace`` on another thread, or a
  nested call), the kernel runs single-threaded on the caller's thread instead of
  waiting: concurrent runs stay correct and never block each other.
* A job is published by filling one of two field slots (``generation & 1``) and then
  storing the state word ``generation << 32 | next chunk`` (seq_cst). The range is cut
  into ``min(n, 4 * threads)`` chunks; the caller and every awake worker claim chunks
  with a compare-and-swap on the state word (a claim succeeds only for the current
  job, so a worker that wakes late can never run a stale job) and count finished
  chunks in ``done``. The caller works too, then waits only until ``done`` reaches
  the chunk count: a worker that is not scheduled (busy machine) costs nothing, its
  chunks are taken by whoever is running.
* Idle workers spin on the generation for a short while (back-to-back kernels of one
  run dispatch without a syscall), then sleep on a condition variable; the dispatcher
  broadcasts after each publish, so there is no lost wake-up.
* A library destructor stops and joins the workers (safe ``dlclose``) when the pool is
  idle. After ``fork`` the child's pool has no workers, which is harmless (nobody waits
  for them; the caller takes every chunk).
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm.loops import I8, I8_PTR, I32, I64, VOID

#: Most threads (caller included) a library ever uses.
MAX_THREADS = 64
#: Generation polls before an idle worker sleeps / before the waiting caller yields.
WORKER_SPINS = 1 << 13
CALLER_SPINS = 1 << 12
#: Chunks per thread of one parallel loop.
CHUNKS_PER_THREAD = 4
#: Bytes reserved for a pthread_mutex_t / pthread_cond_t (glibc: at most 48).
_SYNC_BYTES = 64
#: The dispatcher's symbol (internal linkage in the final object).
DISPATCH = "nnc.parallel_for"

BODY_TYPE = ir.FunctionType(VOID, [I8_PTR, I64, I64])
DISPATCH_TYPE = ir.FunctionType(VOID, [BODY_TYPE.as_pointer(), I8_PTR, I64])


def dispatcher(module: ir.Module) -> ir.Function:
    """The (possibly not yet defined) ``nnc.parallel_for`` of ``module``."""
    if DISPATCH in module.globals:
        return module.globals[DISPATCH]
    fn = ir.Function(module, DISPATCH_TYPE, DISPATCH)
    fn.attributes.add("nounwind")
    return fn


class _Pool:
    """Emits the pool's globals and functions into one module."""

    def __init__(self, module: ir.Module, size_bits: int, arch: str, default_threads: int):
        self.m = module
        self.size_t = ir.IntType(size_bits)
        self.arch = arch
        self.default = default_threads
        g = self.glob
        self.once = g("once", I32)
        self.mutex = g("mutex", ir.ArrayType(I8, _SYNC_BYTES), 64)
        self.cond = g("cond", ir.ArrayType(I8, _SYNC_BYTES), 64)
        self.threads = g("threads", I32, init=default_threads)
        self.busy = g("busy", I32, 64)
        self.workers = g("workers", I32)
        self.stop = g("stop", I32, init=MAX_THREADS)
        self.state = g("state", I64, 64)
        self.done = g("done", I64, 64)
        self.chunks = g("chunks", ir.ArrayType(I64, 2))
        self.n = g("n", ir.ArrayType(I64, 2))
        self.body = g("body", ir.ArrayType(BODY_TYPE.as_pointer(), 2))
        self.ctx = g("ctx", ir.ArrayType(I8_PTR, 2))
        self.tids = g("tids", ir.ArrayType(self.size_t, MAX_THREADS))
        self.born = g("born", ir.ArrayType(I32, MAX_THREADS))
        self.declare_libc()

    # -- helpers ---------------------------------------------------------------------

    def glob(self, name: str, ty: ir.Type, align: int = 0, init: int | None = None):
        gv = ir.GlobalVariable(self.m, ty, f"nnc.pool.{name}")
        gv.initializer = ir.Constant(ty, init) if init is not None else ir.Constant(ty, None)
        gv.linkage = "internal"
        if align:
            gv.align = align
        return gv

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        if name in self.m.globals:
            return self.m.globals[name]
        return ir.Function(self.m, ir.FunctionType(ret, args), name)

    def declare_libc(self) -> None:
        st, vp = self.size_t, I8_PTR
        start = ir.FunctionType(vp, [vp]).as_pointer()
        d = self.declare
        self.f_create = d("pthread_create", I32, [st.as_pointer(), vp, start, vp])
        self.f_join = d("pthread_join", I32, [st, vp.as_pointer()])
        self.f_mutex_init = d("pthread_mutex_init", I32, [vp, vp])
        self.f_lock = d("pthread_mutex_lock", I32, [vp])
        self.f_unlock = d("pthread_mutex_unlock", I32, [vp])
        self.f_cond_init = d("pthread_cond_init", I32, [vp, vp])
        self.f_wait = d("pthread_cond_wait", I32, [vp, vp])
        self.f_broadcast = d("pthread_cond_broadcast", I32, [vp])
        self.f_once = d(
            "pthread_once", I32, [I32.as_pointer(), ir.FunctionType(VOID, []).as_pointer()]
        )
        self.f_yield = d("sched_yield", I32, [])
        self.f_affinity = d("sched_getaffinity", I32, [I32, st, vp])

    def function(self, name: str, ret: ir.Type, args: list[ir.Type]):
        fn = ir.Function(self.m, ir.FunctionType(ret, args), f"nnc.pool.{name}")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def ptr(self, b: ir.IRBuilder, gv) -> ir.Value:
        return b.bitcast(gv, I8_PTR)

    def load(self, b: ir.IRBuilder, gv, order: str = "acquire") -> ir.Value:
        return b.load_atomic(gv, order, gv.type.pointee.width // 8)

    def store(self, b: ir.IRBuilder, value, gv, order: str = "release") -> None:
        b.store_atomic(value, gv, order, gv.type.pointee.width // 8)

    def try_lock(self, b: ir.IRBuilder) -> ir.Value:
        """``cmpxchg busy 0 -> 1`` (acquire); the result's field 1 is the success bit."""
        one, zero = ir.Constant(I32, 1), ir.Constant(I32, 0)
        return b.cmpxchg(self.busy, zero, one, "acquire", "monotonic")

    def pause(self, b: ir.IRBuilder) -> None:
        """A spin-wait hint (x86 ``pause``, ARM ``yield``); intrinsics, as llvmlite has no
        asm parser for cross targets (inline asm would abort object emission)."""
        if self.arch in ("x86_64", "i386", "i686"):
            b.call(self.declare("llvm.x86.sse2.pause", VOID, []), [])
        elif self.arch in ("aarch64", "arm"):
            hint = self.declare(f"llvm.{self.arch}.hint", VOID, [I32])
            b.call(hint, [ir.Constant(I32, 1)])  # hint #1 = yield

    def loop(self, b: ir.IRBuilder, name: str):
        """A new block ``name`` that the current block branches to; returns it."""
        blk = b.function.append_basic_block(name)
        b.branch(blk)
        b.position_at_end(blk)
        return blk

    # -- functions -------------------------------------------------------------------

    def emit(self) -> None:
        self.emit_init()
        self.emit_cpus()
        self.emit_current()
        self.emit_run_chunks()
        self.emit_worker()
        self.emit_shrink()
        self.emit_dispatch()
        self.emit_destructor()

    def emit_init(self) -> None:
        fn, b = self.function("init", VOID, [])
        null = ir.Constant(I8_PTR, None)
        b.call(self.f_mutex_init, [self.ptr(b, self.mutex), null])
        b.call(self.f_cond_init, [self.ptr(b, self.cond), null])
        b.ret_void()
        self.init = fn

    def emit_cpus(self) -> None:
        """``i32 cpus()``: CPUs in the process's affinity mask (``sched_getaffinity``, so
        ``taskset``/cgroup cpusets count), clamped to [1, MAX_THREADS]."""
        fn, b = self.function("cpus", I32, [])
        nbytes = 128
        with b.goto_entry_block():
            mask = b.alloca(ir.ArrayType(I8, nbytes))
            count = b.alloca(I32)
        b.store(ir.Constant(I32, 0), count)
        b.store(ir.Constant(mask.type.pointee, None), mask)
        rc = b.call(
            self.f_affinity,
            [ir.Constant(I32, 0), ir.Constant(self.size_t, nbytes), b.bitcast(mask, I8_PTR)],
        )
        # glibc returns 0 (mask zero-filled past the kernel's size), the raw syscall the
        # byte count; an error leaves count 0 -> 1 thread.
        full = ir.Constant(I32, nbytes)
        got = b.select(b.icmp_signed("==", rc, ir.Constant(I32, 0)), full, rc)
        ctpop = self.declare("llvm.ctpop.i8", I8, [I8])
        head = self.loop(b, "bytes")
        i = b.phi(I32)
        i.add_incoming(ir.Constant(I32, 0), fn.entry_basic_block)
        body, done = fn.append_basic_block("byte"), fn.append_basic_block("done")
        b.cbranch(b.icmp_signed("<", i, got), body, done)
        b.position_at_end(body)
        byte = b.load(b.gep(mask, [ir.Constant(I32, 0), i]))
        b.store(b.add(b.load(count), b.zext(b.call(ctpop, [byte]), I32)), count)
        i.add_incoming(b.add(i, ir.Constant(I32, 1)), body)
        b.branch(head)
        b.position_at_end(done)
        n = b.load(count)
        n = b.select(b.icmp_signed("<", n, ir.Constant(I32, 1)), ir.Constant(I32, 1), n)
        lim = ir.Constant(I32, MAX_THREADS)
        b.ret(b.select(b.icmp_signed(">", n, lim), lim, n))
        self.cpus = fn

    def emit_current(self) -> None:
        """``i32 current()``: the thread setting, resolving "all cores" (0) on first use."""
        fn, b = self.function("current", I32, [])
        t = self.load(b, self.threads, "monotonic")
        auto, done = fn.append_basic_block("auto"), fn.append_basic_block("done")
        b.cbranch(b.icmp_signed(">", t, ir.Constant(I32, 0)), done, auto)
        b.position_at_end(auto)
        c = b.call(self.cpus, [])
        self.store(b, c, self.threads, "monotonic")
        b.branch(done)
        b.position_at_end(done)
        r = b.phi(I32)
        r.add_incoming(t, fn.entry_basic_block)
        r.add_incoming(c, auto)
        b.ret(r)
        self.current = fn

    # -- jobs: state = (generation << 32) | next chunk; fields in slot[generation & 1] ----

    def gen_of(self, b: ir.IRBuilder, state: ir.Value) -> ir.Value:
        return b.trunc(b.lshr(state, ir.Constant(I64, 32)), I32)

    def slot(self, b: ir.IRBuilder, gv, gen: ir.Value) -> ir.Value:
        """Pointer to ``gv[gen & 1]`` (a two-slot job field)."""
        idx = b.and_(gen, ir.Constant(I32, 1))
        return b.gep(gv, [ir.Constant(I32, 0), idx])

    def emit_run_chunks(self) -> None:
        """``void run_chunks(i32 gen)``: claim and run chunks of job ``gen`` until none is
        left or a newer job replaced it.

        A chunk is claimed by a compare-and-swap of the whole state word, so a claim
        succeeds only while ``gen`` is the current job and the chunk is unclaimed; the
        job (hence its slot) cannot be finished or reused before the claimed chunk is
        done, so the slot fields read before the claim are the job's own.
        """
        fn, b = self.function("run_chunks", VOID, [I32])
        gen = fn.args[0]
        head = self.loop(b, "claim")
        s = self.load(b, self.state)
        chunks = b.load(self.slot(b, self.chunks, gen))
        c = b.and_(s, ir.Constant(I64, 0xFFFFFFFF))
        live = b.and_(b.icmp_unsigned("==", self.gen_of(b, s), gen), b.icmp_signed("<", c, chunks))
        claim, done = fn.append_basic_block("try"), fn.append_basic_block("done")
        b.cbranch(live, claim, done)
        b.position_at_end(claim)
        pair = b.cmpxchg(self.state, s, b.add(s, ir.Constant(I64, 1)), "acquire", "monotonic")
        work = fn.append_basic_block("work")
        b.cbranch(b.extract_value(pair, 1), work, head)
        b.position_at_end(work)
        n = b.load(self.slot(b, self.n, gen))
        lo = b.sdiv(b.mul(n, c), chunks)
        hi = b.sdiv(b.mul(n, b.add(c, ir.Constant(I64, 1))), chunks)
        body = b.load(self.slot(b, self.body, gen))
        b.call(body, [b.load(self.slot(b, self.ctx, gen)), lo, hi])
        b.atomic_rmw("add", self.done, ir.Constant(I64, 1), "release")
        b.branch(head)
        b.position_at_end(done)
        b.ret_void()
        self.run_chunks = fn

    def emit_worker(self) -> None:
        """``i8* worker(i8* index)``: wait for a new job, help with it, repeat."""
        fn, b = self.function("worker", I8_PTR, [I8_PTR])
        raw = b.ptrtoint(fn.args[0], self.size_t)
        idx = b.trunc(raw, I32) if self.size_t.width > 32 else raw
        with b.goto_entry_block():
            mine = b.alloca(I32)
            spins = b.alloca(I32)
        b.store(b.load(b.gep(self.born, [ir.Constant(I32, 0), idx])), mine)
        wait = self.loop(b, "wait")
        b.store(ir.Constant(I32, 0), spins)
        spin = self.loop(b, "spin")
        g = self.gen_of(b, self.load(b, self.state))
        got, more = fn.append_basic_block("got"), fn.append_basic_block("more")
        b.cbranch(b.icmp_unsigned("!=", g, b.load(mine)), got, more)
        b.position_at_end(more)
        sp = b.load(spins)
        pause, sleep = fn.append_basic_block("pause"), fn.append_basic_block("sleep")
        b.cbranch(b.icmp_signed("<", sp, ir.Constant(I32, WORKER_SPINS)), pause, sleep)
        b.position_at_end(pause)
        self.pause(b)
        b.store(b.add(sp, ir.Constant(I32, 1)), spins)
        b.branch(spin)
        # Sleep: re-check the generation under the mutex before every wait.
        b.position_at_end(sleep)
        b.call(self.f_lock, [self.ptr(b, self.mutex)])
        check = self.loop(b, "check")
        g2 = self.gen_of(b, self.load(b, self.state))
        block, woke = fn.append_basic_block("block"), fn.append_basic_block("woke")
        b.cbranch(b.icmp_unsigned("==", g2, b.load(mine)), block, woke)
        b.position_at_end(block)
        b.call(self.f_wait, [self.ptr(b, self.cond), self.ptr(b, self.mutex)])
        b.branch(check)
        b.position_at_end(woke)
        b.call(self.f_unlock, [self.ptr(b, self.mutex)])
        b.branch(got)
        b.position_at_end(got)
        gen = b.phi(I32)
        gen.add_incoming(g, spin)
        gen.add_incoming(g2, woke)
        b.store(gen, mine)
        leave, work = fn.append_basic_block("leave"), fn.append_basic_block("work")
        b.cbranch(b.icmp_signed(">=", idx, self.load(b, self.stop)), leave, work)
        b.position_at_end(work)
        b.call(self.run_chunks, [gen])
        b.branch(wait)
        b.position_at_end(leave)
        b.ret(ir.Constant(I8_PTR, None))
        self.worker = fn

    def publish(
        self, b: ir.IRBuilder, body: ir.Value, ctx: ir.Value, n: ir.Value, chunks: ir.Value
    ) -> ir.Value:
        """Start a job (caller holds busy): fill the next slot, reset ``done``, publish
        the new state and wake sleeping workers. Returns the job's generation."""
        old = self.load(b, self.state, "monotonic")
        gen = b.add(self.gen_of(b, old), ir.Constant(I32, 1))
        b.store(body, self.slot(b, self.body, gen))
        b.store(ctx, self.slot(b, self.ctx, gen))
        b.store(n, self.slot(b, self.n, gen))
        b.store(chunks, self.slot(b, self.chunks, gen))
        self.store(b, ir.Constant(I64, 0), self.done, "monotonic")
        state = b.shl(b.zext(gen, I64), ir.Constant(I64, 32))
        self.store(b, state, self.state, "seq_cst")
        b.call(self.f_lock, [self.ptr(b, self.mutex)])
        b.call(self.f_broadcast, [self.ptr(b, self.cond)])
        b.call(self.f_unlock, [self.ptr(b, self.mutex)])
        return gen

    def wait_done(self, b: ir.IRBuilder, chunks: ir.Value) -> None:
        """Spin (then yield) until ``chunks`` chunks of the current job are done: only
        chunks that workers claimed are waited for, never a worker that did not show up."""
        fn = b.function
        with b.goto_entry_block():
            spins = b.alloca(I32)
        b.store(ir.Constant(I32, 0), spins)
        head = self.loop(b, "pending")
        left = b.icmp_signed("<", self.load(b, self.done), chunks)
        more, done = fn.append_basic_block("pending.more"), fn.append_basic_block("pending.done")
        b.cbranch(left, more, done)
        b.position_at_end(more)
        sp = b.load(spins)
        b.store(b.add(sp, ir.Constant(I32, 1)), spins)
        spin, yld = fn.append_basic_block("pending.spin"), fn.append_basic_block("pending.yield")
        b.cbranch(b.icmp_signed("<", sp, ir.Constant(I32, CALLER_SPINS)), spin, yld)
        b.position_at_end(spin)
        self.pause(b)
        b.branch(head)
        b.position_at_end(yld)
        b.call(self.f_yield, [])
        b.branch(head)
        b.position_at_end(done)

    def emit_shrink(self) -> None:
        """``void shrink(i32 keep)``: stop and join workers ``keep..``; caller holds busy."""
        fn, b = self.function("shrink", VOID, [I32])
        keep = fn.args[0]
        w = b.load(self.workers)
        go, done = fn.append_basic_block("go"), fn.append_basic_block("done")
        b.cbranch(b.icmp_signed(">", w, keep), go, done)
        b.position_at_end(go)
        self.store(b, keep, self.stop, "seq_cst")
        null_body = ir.Constant(BODY_TYPE.as_pointer(), None)
        zero = ir.Constant(I64, 0)
        self.publish(b, null_body, ir.Constant(I8_PTR, None), zero, zero)  # an empty job
        join_head = self.loop(b, "join")
        i = b.phi(I32)
        i.add_incoming(keep, go)
        jbody, jdone = fn.append_basic_block("join.body"), fn.append_basic_block("join.done")
        b.cbranch(b.icmp_signed("<", i, w), jbody, jdone)
        b.position_at_end(jbody)
        tid = b.load(b.gep(self.tids, [ir.Constant(I32, 0), i]))
        b.call(self.f_join, [tid, ir.Constant(I8_PTR.as_pointer(), None)])
        i.add_incoming(b.add(i, ir.Constant(I32, 1)), b.block)
        b.branch(join_head)
        b.position_at_end(jdone)
        b.store(keep, self.workers)
        self.store(b, ir.Constant(I32, MAX_THREADS), self.stop, "seq_cst")
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()
        self.shrink = fn

    def emit_dispatch(self) -> None:
        fn = dispatcher(self.m)
        fn.linkage = "internal"
        body, ctx, n = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        serial = fn.append_basic_block("serial")
        sb = ir.IRBuilder(serial)
        sb.call(body, [ctx, ir.Constant(I64, 0), n])
        sb.ret_void()
        # Single task or single thread: run inline.
        t = b.call(self.current, [])
        multi = fn.append_basic_block("multi")
        one_task = b.icmp_signed("<=", n, ir.Constant(I64, 1))
        small = b.or_(one_task, b.icmp_signed("<=", t, ir.Constant(I32, 1)))
        b.cbranch(small, serial, multi)
        b.position_at_end(multi)
        pair = self.try_lock(b)
        owned = fn.append_basic_block("owned")
        b.cbranch(b.extract_value(pair, 1), owned, serial)
        b.position_at_end(owned)
        b.call(self.f_once, [self.once, self.init])
        want = b.sub(t, ir.Constant(I32, 1))
        # Grow: create workers up to want (a failed pthread_create just stops growing).
        grow_head = self.loop(b, "grow")
        w = b.load(self.workers)
        gbody, gdone = fn.append_basic_block("grow.body"), fn.append_basic_block("grow.done")
        b.cbranch(b.icmp_signed("<", w, want), gbody, gdone)
        b.position_at_end(gbody)
        born = self.gen_of(b, self.load(b, self.state, "monotonic"))
        b.store(born, b.gep(self.born, [ir.Constant(I32, 0), w]))
        tid = b.gep(self.tids, [ir.Constant(I32, 0), w])
        arg = b.inttoptr(b.zext(w, self.size_t) if self.size_t.width > 32 else w, I8_PTR)
        rc = b.call(self.f_create, [tid, ir.Constant(I8_PTR, None), self.worker, arg])
        created = fn.append_basic_block("grow.created")
        b.cbranch(b.icmp_signed("==", rc, ir.Constant(I32, 0)), created, gdone)
        b.position_at_end(created)
        b.store(b.add(w, ir.Constant(I32, 1)), self.workers)
        b.branch(grow_head)
        b.position_at_end(gdone)
        workers = b.load(self.workers)
        run, release = fn.append_basic_block("run"), fn.append_basic_block("release")
        b.cbranch(b.icmp_signed(">", workers, ir.Constant(I32, 0)), run, release)
        b.position_at_end(release)  # no worker could be started: run serially
        self.store(b, ir.Constant(I32, 0), self.busy)
        b.branch(serial)
        b.position_at_end(run)
        total = b.zext(b.add(workers, ir.Constant(I32, 1)), I64)
        limit = b.mul(total, ir.Constant(I64, CHUNKS_PER_THREAD))
        chunks = b.select(b.icmp_signed("<", n, limit), n, limit)
        gen = self.publish(b, body, ctx, n, chunks)
        b.call(self.run_chunks, [gen])
        self.wait_done(b, chunks)
        self.store(b, ir.Constant(I32, 0), self.busy)
        b.ret_void()

    def emit_destructor(self) -> None:
        """Join the workers at unload/exit when the pool is idle."""
        fn, b = self.function("fini", VOID, [])
        pair = self.try_lock(b)
        owned, done = fn.append_basic_block("owned"), fn.append_basic_block("done")
        b.cbranch(b.extract_value(pair, 1), owned, done)
        b.position_at_end(owned)
        b.call(self.shrink, [ir.Constant(I32, 0)])
        self.store(b, ir.Constant(I32, 0), self.busy)
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()
        entry_ty = ir.LiteralStructType([I32, fn.type, I8_PTR])
        dtors = ir.GlobalVariable(self.m, ir.ArrayType(entry_ty, 1), "llvm.global_dtors")
        dtors.linkage = "appending"
        dtors.initializer = ir.Constant(
            dtors.value_type,
            [ir.Constant(entry_ty, [ir.Constant(I32, 65535), fn, ir.Constant(I8_PTR, None)])],
        )

    def emit_api(self, prefix: str) -> None:
        """``PFX_set_num_threads(n)`` and ``PFX_num_threads()``."""
        fn = ir.Function(self.m, ir.FunctionType(I32, [I32]), f"{prefix}_set_num_threads")
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        req = fn.args[0]
        dflt = b.call(self.cpus, []) if self.default == 0 else ir.Constant(I32, self.default)
        n = b.select(b.icmp_signed("<", req, ir.Constant(I32, 1)), dflt, req)
        lim = ir.Constant(I32, MAX_THREADS)
        n = b.select(b.icmp_signed(">", n, lim), lim, n)
        # Take the pool (waiting for a running job), then resize it.
        head = self.loop(b, "lock")
        pair = self.try_lock(b)
        owned, retry = fn.append_basic_block("owned"), fn.append_basic_block("retry")
        b.cbranch(b.extract_value(pair, 1), owned, retry)
        b.position_at_end(retry)
        b.call(self.f_yield, [])
        b.branch(head)
        b.position_at_end(owned)
        self.store(b, n, self.threads, "monotonic")
        b.call(self.shrink, [b.sub(n, ir.Constant(I32, 1))])
        self.store(b, ir.Constant(I32, 0), self.busy)
        b.ret(n)
        fn2 = ir.Function(self.m, ir.FunctionType(I32, []), f"{prefix}_num_threads")
        fn2.attributes.add("nounwind")
        b2 = ir.IRBuilder(fn2.append_basic_block("entry"))
        b2.ret(b2.call(self.current, []))


def emit_thread_pool(
    module: ir.Module, prefix: str, *, size_bits: int, arch: str, default_threads: int
) -> None:
    """Define ``nnc.parallel_for``, the pool and ``PFX_set_num_threads``/``PFX_num_threads``.

    ``default_threads``: threads (caller included) a fresh library uses; 0 = every CPU
    of the process's affinity mask, resolved at the first run.
    """
    pool = _Pool(module, size_bits, arch, default_threads)
    pool.emit()
    pool.emit_api(prefix)


def emit_single_thread_api(module: ir.Module, prefix: str) -> None:
    """The thread-count API of a library built without threads: always 1."""
    for name, args in (("set_num_threads", [I32]), ("num_threads", [])):
        fn = ir.Function(module, ir.FunctionType(I32, args), f"{prefix}_{name}")
        fn.attributes.add("nounwind")
        ir.IRBuilder(fn.append_basic_block("entry")).ret(ir.Constant(I32, 1))
