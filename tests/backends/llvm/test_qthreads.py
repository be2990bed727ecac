"""Static int8 kernels on the thread pool: the tile task split (``qgemm.task_bounds``,
``RowHooks``), the implicit-GEMM conv's fused residual expansion / output compaction and
its parallel interleave give the serial bits for any thread count (odd channel, row and
column tails; ``MIN_PARALLEL_WORK`` lowered to 0 so every loop dispatches)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.backends.llvm import parallel
from nnc.backends.llvm.kernels import qgemm


@given(st.lists(st.integers(1, 50), min_size=1, max_size=80), st.integers(1, 100))
@settings(max_examples=60, deadline=None)
def test_task_bounds_cut_tiles_into_balanced_runs(costs, n_tasks):
    n_tasks = min(n_tasks, len(costs))
    bounds = qgemm.task_bounds(costs, n_tasks)
    assert len(bounds) == n_tasks + 1 and bounds[0] == 0 and bounds[-1] == len(costs)
    assert all(a <= b for a, b in zip(bounds, bounds[1:]))
    loads = [sum(costs[a:b]) for a, b in zip(bounds, bounds[1:])]
    # every task is within one tile of its equal share
    assert max(loads) <= sum(costs) / n_tasks + max(costs)


def test_task_bounds_balance_a_tail_tile():
    """68 column blocks, the last one narrower: the old split (one task per block, 8,9,8..
    per pool chunk) left one of 2 threads ~6% more work; equal-cost runs do not."""
    costs = [qgemm.tile_cost(8, 48 if j < 67 else 32, 16, 144) for j in range(68) for _ in range(8)]
    bounds = qgemm.task_bounds(costs, qgemm.TASKS)
    loads = [sum(costs[a:b]) for a, b in zip(bounds, bounds[1:])]
    for chunks in (8, 12, 16):  # the pool's chunks for 2, 3 and 4 threads
        per = [sum(loads[len(loads) * c // chunks : len(loads) * (c + 1) // chunks])
               for c in range(chunks)]  # fmt: skip
        assert max(per) / (sum(per) / chunks) < 1.02


def _model(c: int = 3, m: int = 15, h: int = 11, w: int = 13, classes: int = 70):
    """conv3x3(c->m)+relu (im2col: 3 channels), conv3x3(m->m)+residual add+relu, conv3x3
    s2 (m->m) (implicit GEMM: a partial channel quad, row and column tails), avg pool,
    gemm(m->classes)."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.2, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["a2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a2", "r1"], ["s2"]),
        helper.make_node("Relu", ["s2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["a3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["a3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    shapes = dict(w1=(m, c, 3, 3), b1=(m,), w2=(m, m, 3, 3), b2=(m,), w3=(m, m, 3, 3), b3=(m,),
                  wf=(classes, m), bf=(classes,))  # fmt: skip
    inits = [init(name, *shape) for name, shape in shapes.items()]
    graph = helper.make_graph(
        nodes, "qthreads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("hook_rows", [0, 10**6])  # RowHooks inside the tile tasks / as passes
@pytest.mark.parametrize("tasks", [qgemm.TASKS, 5])
def test_int8_threads_give_the_serial_bits(monkeypatch, tasks, hook_rows):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    monkeypatch.setattr(qgemm, "TASKS", tasks)
    monkeypatch.setattr(qgemm, "HOOK_ROW_BLOCKS", hook_rows)
    model = _model()
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.normal(0, 1, (1, 3, 11, 13)).astype(np.float32)} for _ in range(4)]
    libs = [nnc.compile(model, quant="int8", calibration=feeds, threads=t) for t in (1, 2)]
    steps = {s.op for s in libs[0]._steps}
    assert {"nn.qconv", "nn.qgemm"} <= steps, steps
    x = rng.normal(0, 1, (1, 3, 11, 13)).astype(np.float32)
    want = libs[0].run([x])[0]
    assert np.abs(want).max() > 0
    for threads in (2, 1, 2):
        libs[1].set_num_threads(threads)
        np.testing.assert_array_equal(libs[1].run([x])[0], want)
