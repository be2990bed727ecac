"""The public Python API end to end: nnc.load / compile / CompiledModel / load_library."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.errors import InputMismatchError, InvalidOptionError, TargetError, UnsupportedOpError
from nnc.ir.builder import io_names


def conv_relu_gemm() -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv 3x3 (4 ch, pad 1) -> Relu -> Flatten -> Gemm (10) -> y[N,10]."""
    rng = np.random.default_rng(0)
    weights = {
        "W": rng.standard_normal((4, 3, 3, 3)) * 0.3,
        "B": rng.standard_normal(4) * 0.1,
        "G": rng.standard_normal((10, 256)) * 0.1,
        "GB": rng.standard_normal(10) * 0.1,
    }
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in weights.items()]
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "G", "GB"], ["y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_relu_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def sample(batch: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return conv_relu_gemm()


@pytest.fixture(scope="module")
def compiled(model) -> nnc.CompiledModel:
    return nnc.compile(model)


def test_compile_matches_onnxruntime(model, compiled):
    x = sample()
    (y,) = compiled.run([x])
    np.testing.assert_allclose(y, reference(model, x), rtol=1e-4, atol=1e-5)
    (y_by_name,) = compiled.run({"x": x})
    np.testing.assert_array_equal(y_by_name, y)
    assert [(t.name, t.shape) for t in compiled.inputs] == [("x", (1, 3, 8, 8))]
    assert [(t.name, t.shape) for t in compiled.outputs] == [("y", (1, 10))]


def test_compile_from_a_file_with_batch_and_other_prefix(model, tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(model, path)
    m = nnc.compile(path, opt_level=1, batch=2, prefix="net")
    x = sample(batch=2)
    np.testing.assert_allclose(m.run([x])[0], reference(model, x), rtol=1e-4, atol=1e-5)
    assert m.prefix == "net" and m.inputs[0].shape == (2, 3, 8, 8)


def test_report_counts_layers_weights_and_macs(compiled):
    report = compiled.report
    by_op = {layer.op: layer for layer in report.layers}
    assert by_op["nn.conv"].macs == 1 * 4 * 8 * 8 * (3 * 3 * 3)
    assert by_op["nn.conv"].params == 4 * 27 + 4
    assert by_op["nn.gemm"].macs == 10 * 256
    assert by_op["nn.gemm"].params == 10 * 256 + 10
    assert by_op["nn.gemm"].output_shape == (1, 10)
    assert "nn.relu" not in by_op  # -O3 fused it into the conv epilogue
    assert report.total_params == 4 * 27 + 4 + 10 * 256 + 10
    assert report.total_weight_bytes == 4 * report.total_params == report.weight_bytes_before
    assert report.workspace_bytes is not None and report.intermediate_bytes == 4 * 4 * 8 * 8
    assert report.compile_seconds > 0
    text = str(report)
    assert "nn.conv" in text and "MACs" in text and "workspace:" in text


def test_module_is_the_ir_after_passes(compiled):
    assert io_names(compiled.module) == (["x"], ["y"])
    names = [op.name for op in compiled.module.walk()]
    assert "nn.conv" in names and "nn.relu" not in names


def test_passes_replace_the_level_pipeline(model):
    m = nnc.compile(model, passes="dce")
    assert m.report.pipeline == "specialize-shapes{batch=1},dce"
    assert "nn.relu" in [layer.op for layer in m.report.layers]
    x = sample(seed=3)
    np.testing.assert_allclose(m.run([x])[0], reference(model, x), rtol=1e-4, atol=1e-5)


def test_save_and_load_library_round_trip(compiled, tmp_path):
    out = tmp_path / "libnet.so"
    compiled.save(out)
    assert out.read_bytes()[:4] == b"\x7fELF"
    assert "nnc_run_with_workspace" in (tmp_path / "libnet.h").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libnet.h", "libnet.so"]
    loaded = nnc.load_library(out)
    assert loaded.prefix == "nnc" and loaded.module is None
    assert "per-layer data is only known at compile time" in str(loaded.report)
    x = sample(seed=5)
    np.testing.assert_array_equal(loaded.run([x])[0], compiled.run([x])[0])
    again = tmp_path / "copy" / "libagain.so"
    again.parent.mkdir()
    loaded.save(again)  # a loaded model saves too, header included
    assert (again.parent / "libagain.h").read_text() == (tmp_path / "libnet.h").read_text()


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda x: [x, x], r"^the model takes 1 input\(s\) \(x\), got 2$"),
        (lambda x: {"input": x}, r"^unknown input name 'input'; the model's inputs are: x$"),
        (lambda x: {}, r"^missing input 'x'"),
        (lambda x: [x.astype(np.float64)], r"^input 'x': expected dtype float32, got float64"),
        (
            lambda x: [x[:, :, :4]],
            r"^input 'x': expected shape \(1, 3, 8, 8\), got \(1, 3, 4, 8\)$",
        ),
    ],
)
def test_bad_inputs_raise_before_native_code(compiled, monkeypatch, make_inputs, message):
    def must_not_run(*args):
        raise AssertionError("native code ran")

    monkeypatch.setattr(compiled._library, "_run", must_not_run)
    with pytest.raises(InputMismatchError, match=message) as info:
        compiled.run(make_inputs(sample()))
    assert "\n" not in str(info.value)


def test_concurrent_runs_agree(compiled):
    xs = [sample(seed=s) for s in range(16)]
    expected = [compiled.run([x])[0] for x in xs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda x: compiled.run([x])[0], xs))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"quant": "int8", "granularity": "per-group"}, InvalidOptionError, r"per-group"),
        ({"quant": "int8", "calib_method": "kl"}, InvalidOptionError, r"--calib-method"),
        ({"quant": "int3"}, InvalidOptionError, r"unknown --quant mode 'int3'"),
        ({"opt_level": 7}, InvalidOptionError, r"-O7"),
        ({"prefix": "1net"}, InvalidOptionError, r"not a C identifier"),
        ({"batch": 0}, InvalidOptionError, r"--batch"),
        ({"passes": "no-such-pass"}, InvalidOptionError, r"unknown pass 'no-such-pass'"),
        ({"calibration": {"x": np.zeros(1)}}, InvalidOptionError, r"--calibration"),
        ({"target": "sparc-unknown"}, TargetError, r"unknown target 'sparc-unknown'"),
        ({"target": "aarch64-linux-gnu"}, TargetError, r"not this machine"),
    ],
)
def test_bad_options_raise_one_line_errors(model, options, error, message):
    if options.get("target") == "aarch64-linux-gnu" and nnc_host_arch() == "aarch64":
        options = {"target": "x86_64-linux-gnu"}
    with pytest.raises(error, match=message) as info:
        nnc.compile(model, **options)
    assert "\n" not in str(info.value)


def nnc_host_arch() -> str:
    from nnc.backends.llvm.targets import host_target

    return host_target().arch


def test_load_returns_the_imported_module(model):
    module = nnc.load(model)
    assert io_names(module) == (["x"], ["y"])
    bad = helper.make_model(
        helper.make_graph(
            [helper.make_node("FooBar", ["x"], ["y"], name="mystery")],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(UnsupportedOpError, match="FooBar.*mystery"):
        nnc.load(bad)


def test_import_nnc_is_lazy():
    code = (
        "import sys, nnc; heavy = [m for m in ('xdsl', 'llvmlite', 'onnx') if m in sys.modules];"
        " print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_compile_takes_every_option_of_compile_model():
    """nnc.compile forwards its keywords to compile_model: the two signatures must agree."""
    import inspect

    from nnc import compiler

    api = inspect.signature(compiler.compile).parameters
    core = inspect.signature(compiler.compile_model).parameters
    assert set(api) == set(core) - {"build"}
    assert all(api[name].default == core[name].default for name in api if name != "model")
