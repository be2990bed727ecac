"""Workspace planning: lifetimes, offsets (property tests on random chains/DAGs)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from llvm_testlib import concat_residual, unary_chain

from nnc.backends.llvm.lower import lower_module
from nnc.backends.llvm.plan import (
    ALIGNMENT,
    Lifetime,
    align_up,
    assign_offsets,
    lifetimes,
    plan_workspace,
)


def _check_placement(items: list[Lifetime], offsets: dict, peak: int) -> None:
    """No two simultaneously live buffers overlap; offsets aligned; peak is tight above."""
    for it in items:
        assert offsets[it.key] % ALIGNMENT == 0
        assert offsets[it.key] + align_up(it.size) <= peak or it.size == 0
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if a.size and b.size and a.overlaps(b):
                a0, b0 = offsets[a.key], offsets[b.key]
                assert a0 + a.size <= b0 or b0 + b.size <= a0, (a, b, a0, b0)
    # Lower bound: at every step everything live must fit.
    steps = {t for it in items for t in (it.start, it.end)}
    live_max = max(
        (sum(align_up(i.size) for i in items if i.start <= t <= i.end) for t in steps), default=0
    )
    assert live_max <= peak <= sum(align_up(i.size) for i in items)


@st.composite
def dags(draw):
    """Random programs: step t reads some earlier values and writes value t."""
    n = draw(st.integers(1, 30))
    sizes = draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n))
    steps = []
    for t in range(n):
        reads = draw(st.lists(st.integers(0, t - 1), max_size=3)) if t else []
        steps.append((reads, [t]))
    return steps, dict(enumerate(sizes))


@given(dags())
def test_no_live_buffers_overlap(program):
    steps, sizes = program
    items = lifetimes(steps, sizes)
    placement = assign_offsets(items)
    _check_placement(items, placement.offsets, placement.peak)


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 9999)), max_size=40)
)
def test_random_intervals(raw):
    items = [Lifetime(i, size, min(a, b), max(a, b)) for i, (a, b, size) in enumerate(raw)]
    placement = assign_offsets(items)
    _check_placement(items, placement.offsets, placement.peak)


@given(st.integers(3, 25), st.integers(1, 10000))
def test_chain_reuses_memory(n, size):
    steps = [([t - 1] if t else [], [t]) for t in range(n)]
    items = lifetimes(steps, dict.fromkeys(range(n), size))
    placement = assign_offsets(items)
    assert placement.peak == 2 * align_up(size)  # ping-pong between two buffers


def test_lifetimes_are_inclusive():
    items = {
        it.key: it
        for it in lifetimes([([], ["a"]), (["a"], ["b"]), (["b"], ["c"])], {"a": 4, "b": 4, "c": 4})
    }
    assert (items["a"].start, items["a"].end) == (0, 1)
    assert items["a"].overlaps(items["b"]) and not items["a"].overlaps(items["c"])


def test_model_chain_peak_below_sum():
    model = lower_module(unary_chain(n=6, size=4096))
    plan = plan_workspace(model, lambda k: 0)
    # 5 intermediates of 16 KiB (the last op writes the output): two suffice.
    assert plan.intermediate_bytes == 5 * 4096 * 4
    assert plan.peak_bytes == 2 * 4096 * 4 < plan.intermediate_bytes


def test_model_plan_with_scratch():
    model = lower_module(concat_residual())
    plan = plan_workspace(model, lambda k: 1000 if k.emitter == "conv2d" else 0)
    temps = model.temps()
    assert set(plan.temp_offsets) == {id(b) for b in temps}
    assert len(plan.scratch_offsets) == sum(s.kernel.emitter == "conv2d" for s in model.steps)
    assert plan.peak_bytes < plan.intermediate_bytes + plan.scratch_bytes
