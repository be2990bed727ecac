"""Reference checks: run a model with onnxruntime and compare nnc's results with it.

* ``run_onnxruntime(model, feeds)``: one thread, all graph optimizations.
* ``assert_close(actual, expected, rtol)``: max |actual - expected| must not exceed
  ``rtol * max(max |expected|, 1e-6)`` (plus ``atol``); shapes must match; NaN/inf
  must agree.
* ``check_model(model, feeds, rtol, compiled)``: import with ``import_onnx``, verify the
  module, run the nn interpreter, compare each output with onnxruntime; with
  ``compiled=True`` also ``nnc.compile(model).run(feeds)`` and compare that (a dynamic
  batch dimension is specialized to the fed batch size).
* ``make_model`` / ``single_node_model``: small float32 ONNX models for tests;
  ``op_names(module)`` lists the ops of an imported model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import ModuleOp

Feeds = Mapping[str, np.ndarray] | Sequence[np.ndarray]
ModelLike = onnx.ModelProto | str | os.PathLike


def _model_bytes_or_path(model: ModelLike) -> bytes | str:
    return model.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)


def _input_names(model: ModelLike) -> list[str]:
    """Graph inputs that are not initializers, in order."""
    proto = (
        model
        if isinstance(model, onnx.ModelProto)
        else onnx.load(os.fspath(model), load_external_data=False)
    )
    inits = {t.name for t in proto.graph.initializer}
    return [v.name for v in proto.graph.input if v.name not in inits]


def _feed_dict(model: ModelLike, feeds: Feeds) -> dict[str, np.ndarray]:
    if isinstance(feeds, Mapping):
        return {k: np.asarray(v) for k, v in feeds.items()}
    return {n: np.asarray(v) for n, v in zip(_input_names(model), feeds, strict=True)}


def run_onnxruntime(model: ModelLike, feeds: Feeds) -> list[np.ndarray]:
    """Outputs of ``model`` under onnxruntime (CPU, 1 thread, all graph optimizations)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(
        _model_bytes_or_path(model), opts, providers=["CPUExecutionProvider"]
    )
    return [np.asarray(o) for o in sess.run(None, _feed_dict(model, feeds))]


#: max|expected| is taken as at least this, so all-zero (underflowed) outputs compare sanely.
_SCALE_FLOOR = 1e-6


def assert_close(
    actual: np.ndarray,
    expected: np.ndarray,
    rtol: float = 1e-4,
    atol: float = 0.0,
    what: str = "output",
) -> None:
    """Assert ``max|actual - expected| <= rtol * max|expected| + atol`` (AssertionError)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    special = ~np.isfinite(e)
    if np.any(special != ~np.isfinite(a)) or np.any(
        (a[special] != e[special]) & ~(np.isnan(a[special]) & np.isnan(e[special]))
    ):
        raise AssertionError(f"{what}: NaN/inf positions or values differ from expected")
    if not np.any(~special):
        return
    err = np.abs(a - e)[~special]
    scale = max(float(np.abs(e[~special]).max()), _SCALE_FLOOR)
    bound = rtol * scale + atol
    if float(err.max()) > bound:
        flat = int(np.argmax(np.where(special, -1, np.abs(a - e))))
        worst = tuple(int(i) for i in np.unravel_index(flat, e.shape))
        raise AssertionError(
            f"{what}: max abs error {err.max():.3g} exceeds {bound:.3g} (rtol {rtol:g} x "
            f"max|expected| {scale:.3g} + atol {atol:g}); worst at {worst}: "
            f"{a[worst]:.7g} vs {e[worst]:.7g}"
        )


def check_model(
    model: ModelLike, feeds: Feeds, rtol: float = 1e-4, compiled: bool = True, atol: float = 0.0
) -> ModuleOp:
    """Import, verify and interpret ``model``; compare with onnxruntime (and the compiled
    model when ``compiled``). Returns the imported module."""
    from nnc.frontends.onnx import import_onnx
    from nnc.ir.interpret import interpret

    feed_dict = _feed_dict(model, feeds)
    module = import_onnx(model)
    module.verify()
    expected = run_onnxruntime(model, feed_dict)
    got = interpret(module, feed_dict)
    _compare(got, expected, rtol, atol, "interpreter")
    if compiled:
        import nnc

        ordered = [feed_dict[n] for n in _input_names(model)]
        kwargs = {"batch": ordered[0].shape[0]} if _dynamic_batch(module) and ordered else {}
        _compare(nnc.compile(model, **kwargs).run(ordered), expected, rtol, atol, "compiled")
    return module


def _dynamic_batch(module: ModuleOp) -> bool:
    """True when some model input has a dynamic leading (batch) dimension."""
    from nnc.ir.builder import main_func
    from nnc.ir.types import DYNAMIC, shape_of

    args = main_func(module).body.blocks[0].args
    return any(shape_of(a)[:1] == (DYNAMIC,) for a in args)


def _compare(
    got: Sequence[np.ndarray], expected: Sequence[np.ndarray], rtol: float, atol: float, who: str
) -> None:
    if len(got) != len(expected):
        raise AssertionError(f"{who}: {len(got)} outputs, onnxruntime gave {len(expected)}")
    for i, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, rtol, atol, what=f"{who} output {i} vs onnxruntime")


def op_names(module: ModuleOp) -> list[str]:
    """Names of the ops in ``main`` (without the return), in order."""
    from nnc.ir.builder import main_func

    return [op.name for op in main_func(module).body.blocks[0].ops][:-1]


# ---------------------------------------------------------------------- model building


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, Sequence[int | str]],
    outputs: Sequence[str],
    initializers: Mapping[str, np.ndarray] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    """A float32 model: ``inputs`` name -> shape (str dims are symbolic), ``outputs`` names
    (shapes left to inference), ``initializers`` name -> array."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in (initializers or {}).items()],
    )
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
    )


def single_node_model(
    op_type: str, inputs: Sequence[tuple[str, object]], n_outputs: int = 1, opset: int = 17, **attrs
) -> onnx.ModelProto:
    """A model of one node. ``inputs``: (name, shape tuple) for a graph input, (name, array)
    for an initializer, ("", None) for an omitted optional input. Outputs: y0, y1, ..."""
    arrays = (np.ndarray, np.generic)
    feeds = {n: v for n, v in inputs if n and not isinstance(v, arrays)}
    inits = {n: np.asarray(v) for n, v in inputs if n and isinstance(v, arrays)}
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(
        op_type, [n for n, _ in inputs], outs, name=f"{op_type.lower()}0", **attrs
    )
    return make_model([node], feeds, outs, inits, opset)
