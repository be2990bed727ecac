"""The benchmark tools still run (a tiny model, two timed runs): they are not imported by
the package, so without this a refactor could break them silently. Timing values are not
checked (performance is measured by the tools, never by tests)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "tools"))

import _bench_common  # noqa: E402
import _bench_compress  # noqa: E402
import bench  # noqa: E402
import compile_stats  # noqa: E402

from nnc.compiler import compile_model  # noqa: E402
from nnc.testing import model_zoo  # noqa: E402


def test_bench_prints_a_row_per_model_and_thread_count(capsys):
    assert bench.main(["--models", "mlp", "--runs", "2", "--warmup", "1", "--threads", "1"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mlp")]
    assert len(table) == 1


@pytest.mark.parametrize("model", ["mlp"])
def test_compile_stats_prints_workspace_and_intermediates(model, capsys):
    assert compile_stats.main(["--models", model, "--runs", "2"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {model}")]
    assert len(row) == 1 and len(row[0].split("|")) == 10


def _table_rows(out: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown rows whose first cell is ``first_cell``."""
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def _finite(cell: str) -> bool:
    """Every number in a table cell (``"0.19 / 0.05"``, ``"75%"``, ``"-"``) is finite."""
    parts = [p.strip().rstrip("%") for p in cell.split("/")]
    return all(p == "-" or math.isfinite(float(p)) for p in parts)


def test_bench_quant_prints_speed_and_accuracy_rows(capsys):
    args = ["--quant", "int8", "--models", "mlp", "--runs", "2", "--warmup", "1"]
    assert bench.main([*args, "--threads", "1", "--calib-samples", "4", "--eval-samples", "2"]) == 0
    rows = _table_rows(capsys.readouterr().out, "mlp")
    speed = [r for r in rows if r[1] == "1"]  # threads column
    accuracy = [r for r in rows if r[1] == "2"]  # samples column
    assert len(speed) == 1 and len(accuracy) == 1
    assert all(_finite(c) for c in speed[0][1:] + accuracy[0][1:])
    fp32_mib, int8_mib = (float(x) for x in accuracy[0][6].split("/"))
    assert int8_mib < fp32_mib / 2  # int8 weights: about a quarter of fp32


def test_bench_compress_prints_baseline_and_technique_rows(capsys):
    args = ["--compress", "prune=0.8,sparse", "--models", "mlp", "--runs", "2", "--warmup", "1"]
    assert bench.main(args) == 0
    rows = _table_rows(capsys.readouterr().out, "mlp")
    assert [r[1] for r in rows] == ["baseline -O3", "prune=0.8,sparse"]
    assert all(_finite(c) for r in rows for c in r[2:])
    base, pruned = rows
    assert base[4] == "1.00" and base[11] == "0.0e+00"  # ratios against itself
    assert float(pruned[6]) > 2 and float(pruned[8]) < float(base[8])  # nncz, non-zero MACs


def test_compress_module_macs_counts_sparse_layers_by_nonzeros():
    model = model_zoo.mlp()
    dense = compile_model(model, opt_level=3, build=False).module
    sparse = compile_model(model, opt_level=3, compress="prune=0.9,sparse", build=False).module
    d_all, d_nz = _bench_compress.module_macs(dense)
    s_all, s_nz = _bench_compress.module_macs(sparse)
    assert d_all == d_nz == s_all  # same layer shapes
    assert 0.05 * d_all < s_nz < 0.15 * d_all  # 90% of the weights pruned


@pytest.mark.parametrize("runs, rounds, warmup", [(5, 1, 0), (20, 5, 1), (7, 3, 2), (2, 9, 1)])
def test_block_medians_times_every_engine_runs_times(runs, rounds, warmup, monkeypatch):
    monkeypatch.setattr(_bench_common.time, "sleep", lambda seconds: None)
    calls = {"a": 0, "b": 0}

    def engine(key: str):
        return lambda: calls.__setitem__(key, calls[key] + 1)

    medians = _bench_common.block_medians([engine("a"), engine("b")], runs, warmup, rounds)
    passes = min(rounds, runs)  # every pass times at least one run
    assert calls == {"a": runs + warmup * passes, "b": runs + warmup * passes}
    assert len(medians) == 2 and all(m >= 0 for m in medians)


def test_bench_compress_rejects_a_bad_spec_before_compiling(capsys):
    assert bench.main(["--compress", "prune=2", "--models", "mlp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench: error: --compress: prune=2.0 is out of range [0.0, 1.0]"]


def test_with_constant_weights_turns_constant_of_shape_weights_into_initializers():
    """onnx's light models (IR 3, opset 9) list weights as graph inputs built by
    ConstantOfShape; ORT's quantizer needs them as initializers at opset >= 13."""
    import _bench_quant
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        helper.make_node("ConstantOfShape", ["w_shape"], ["w"], value=value),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT if n != "w_shape" else
                                       TensorProto.INT64, s)
         for n, s in (("x", [1, 3]), ("w_shape", [2]), ("w", [3, 2]))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.array([3, 2], np.int64), "w_shape")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    fixed = _bench_quant.with_constant_weights(model)
    onnx.checker.check_model(fixed)
    assert [i.name for i in fixed.graph.input] == ["x"]
    assert [t.name for t in fixed.graph.initializer] == ["w"]
    assert fixed.opset_import[0].version >= 13
    x = np.arange(3, dtype=np.float32).reshape(1, 3)
    got = ort.InferenceSession(fixed.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, x @ np.full((3, 2), 0.5, np.float32))
