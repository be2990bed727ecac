"""``nnc --conv-algo`` and ``nnc.compile(conv_algo=...)``: forced, checked, one-line errors."""

import numpy as np
import onnxruntime as ort
import pytest

import nnc
from nnc.compiler import _with_conv_algo
from nnc.driver.nnc_main import main
from nnc.errors import InvalidOptionError


def test_cli_forces_winograd(model_file, tmp_path):
    out = tmp_path / "net.mlir"
    assert (
        main([str(model_file), "--conv-algo", "winograd4", "--emit", "mlir", "-o", str(out)]) == 0
    )
    text = out.read_text()
    assert '"nn.winograd_conv"' in text and "tile = 4" in text and '"nn.conv"' not in text


def test_cli_rejects_unknown_algorithm(model_file, tmp_path, capsys):
    assert main([str(model_file), "--conv-algo", "winograd3", "-o", str(tmp_path / "a.so")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--conv-algo" in err and "winograd3" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("algo", ["winograd2", "fft", "im2col"])
def test_compile_with_forced_algorithm_matches_onnxruntime(model_proto, algo):
    compiled = nnc.compile(model_proto, conv_algo=algo)
    assert f"select-conv-algo{{algo={algo}}}" in compiled.report.pipeline
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8), dtype=np.float32)
    sess = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = compiled.run([x])
    np.testing.assert_allclose(y, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_conv_algo_replaces_or_extends_the_pipeline():
    assert _with_conv_algo("a,select-conv-algo,b", "fft") == "a,select-conv-algo{algo=fft},b"
    assert (
        _with_conv_algo("select-conv-algo{algo=auto margin=0.5}", "direct")
        == "select-conv-algo{algo=direct}"
    )
    assert _with_conv_algo("a,b", "winograd2") == "a,b,select-conv-algo{algo=winograd2}"
    assert _with_conv_algo("a", None) == "a"
    with pytest.raises(InvalidOptionError, match="unknown --conv-algo 'bogus'"):
        nnc.compile("does-not-matter.onnx", conv_algo="bogus")
