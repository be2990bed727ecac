"""Fast checks of the seeded ONNX model zoo (nnc.testing.model_zoo) against onnxruntime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import nnc
from nnc.testing import model_zoo
from nnc.testing.model_zoo import (
    LIGHT_MODEL_NAMES,
    ZOO,
    light_models,
    random_inputs,
    save_with_external_data,
)

ort = pytest.importorskip("onnxruntime")


def run_ort(model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray]) -> list:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def attr(node: onnx.NodeProto, name: str):
    (a,) = [a for a in node.attribute if a.name == name]
    return onnx.helper.get_attribute_value(a)


def inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


# (registry name, builder kwargs, input shape, output shape)
CASES = [
    ("mlp", {}, (1, 64), (1, 10)),
    ("mlp", {"in_features": 20, "hidden": (32,), "classes": 5, "batch": 3}, (3, 20), (3, 5)),
    ("lenet", {"batch": 2}, (2, 1, 28, 28), (2, 10)),
    ("resnet18", {"image_size": 64}, (1, 3, 64, 64), (1, 1000)),
    ("resnet18", {}, (1, 3, 224, 224), (1, 1000)),
    ("resnet18", {"image_size": 32}, (1, 3, 32, 32), (1, 10)),
    ("resnet18_cifar", {"batch": 2}, (2, 3, 32, 32), (2, 10)),
    ("mobilenet_v2", {"image_size": 64, "classes": 100}, (1, 3, 64, 64), (1, 100)),
    ("transformer_block", {}, (1, 128, 256), (1, 128, 256)),
    ("transformer_block", {"seq": 16, "d_model": 64, "heads": 2, "d_ff": 128, "batch": 2},
     (2, 16, 64), (2, 16, 64)),
    ("transformer_block_gelu_op", {"seq": 16, "d_model": 64}, (1, 16, 64), (1, 16, 64)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs", "in_shape", "out_shape"), CASES)
def test_zoo_model_runs_in_onnxruntime(name, kwargs, in_shape, out_shape):
    model = ZOO[name](**kwargs)
    onnx.checker.check_model(model, full_check=True)
    assert len(model.graph.value_info) > 0, "shapes were not inferred"
    (inp,) = model.graph.input
    assert tuple(d.dim_value for d in inp.type.tensor_type.shape.dim) == in_shape
    feeds = random_inputs(model, seed=1)
    assert feeds[inp.name].shape == in_shape and feeds[inp.name].dtype == np.float32
    (out,) = run_ort(model, feeds)
    assert out.shape == out_shape
    assert np.all(np.isfinite(out))
    # Non-constant, O(1) activations (He init + realistic BN keep them in range).
    assert 0.05 < float(out.std()) < 20.0
    (out2,) = run_ort(model, random_inputs(model, seed=2))
    assert not np.allclose(out, out2)


def test_builders_are_seeded():
    a, b, c = (model_zoo.lenet(seed=s) for s in (0, 0, 1))
    ia, ib, ic = inits(a), inits(b), inits(c)
    assert all(np.array_equal(ia[k], ib[k]) for k in ia)
    assert not np.array_equal(ia["conv1.weight"], ic["conv1.weight"])
    assert a.SerializeToString() == b.SerializeToString()


def test_resnet18_structure():
    m = model_zoo.resnet18(image_size=64)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 20 and ops.count("BatchNormalization") == 20
    assert ops.count("Add") == 8 and ops.count("MaxPool") == 1
    assert ops[-3:] == ["GlobalAveragePool", "Flatten", "Gemm"]
    w = inits(m)
    assert w["conv1.weight"].shape == (64, 3, 7, 7) and "conv1.bias" not in w
    n_params = sum(v.size for k, v in w.items() if "running" not in k)
    assert n_params == 11_689_512  # torchvision resnet18
    # BatchNorm statistics are non-trivial, so folding really changes the weights.
    assert not np.allclose(w["layer1.0.bn1.running_mean"], 0)
    assert not np.allclose(w["layer1.0.bn1.running_var"], 1)
    assert not np.allclose(w["layer1.0.bn1.weight"], 1)
    assert not np.allclose(w["layer1.0.bn1.bias"], 0)
    assert np.all(w["layer1.0.bn1.running_var"] > 0)

    cifar = model_zoo.resnet18(image_size=32)
    assert "MaxPool" not in [n.op_type for n in cifar.graph.node]
    first = cifar.graph.node[0]
    assert first.op_type == "Conv" and attr(first, "kernel_shape") == [3, 3]
    assert attr(first, "strides") == [1, 1]
    assert inits(cifar)["fc.weight"].shape == (10, 512)


def test_mobilenet_v2_structure():
    m = model_zoo.mobilenet_v2(image_size=64)
    w = inits(m)
    assert sum(v.size for k, v in w.items() if "running" not in k and "relu6" not in k) == (
        3_504_872  # torchvision mobilenet_v2
    )
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    depthwise = [n for n in convs if attr(n, "group") > 1]
    assert len(depthwise) == 17
    for n in depthwise:
        assert w[n.input[1]].shape[1] == 1  # group == channels
    clips = [n for n in m.graph.node if n.op_type == "Clip"]
    assert len(clips) == 35 and all(len(n.input) == 3 for n in clips)
    assert [n.op_type for n in m.graph.node].count("Add") == 10
    with pytest.raises(ValueError, match="opset >= 11"):
        model_zoo.mobilenet_v2(image_size=32, opset=10)


def test_transformer_gelu_variants_agree():
    kw = {"seq": 8, "d_model": 32, "heads": 4, "d_ff": 64}
    erf = model_zoo.transformer_block(**kw)
    op = model_zoo.transformer_block(**kw, gelu="op")
    assert erf.opset_import[0].version == 17 and op.opset_import[0].version == 20
    erf_ops = {n.op_type for n in erf.graph.node}
    assert "Erf" in erf_ops and "Gelu" not in erf_ops
    assert "Gelu" in {n.op_type for n in op.graph.node}
    assert {"LayerNormalization", "Softmax", "Transpose", "Reshape"} <= erf_ops
    feeds = random_inputs(erf)
    np.testing.assert_allclose(run_ort(erf, feeds)[0], run_ort(op, feeds)[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="opset >= 20"):
        model_zoo.transformer_block(**kw, gelu="op", opset=17)
    with pytest.raises(ValueError, match="opset >= 17"):
        model_zoo.transformer_block(**kw, opset=16)


def test_opset_parameter():
    m = model_zoo.mlp(opset=13)
    assert m.opset_import[0].version == 13
    assert run_ort(m, random_inputs(m))[0].shape == (1, 10)


def test_random_inputs_is_seeded():
    m = model_zoo.lenet()
    a, b, c = random_inputs(m, 0), random_inputs(m, 0), random_inputs(m, 1)
    assert list(a) == ["input"]
    np.testing.assert_array_equal(a["input"], b["input"])
    assert not np.array_equal(a["input"], c["input"])
    assert abs(float(a["input"].std()) - 1.0) < 0.1


def test_light_models_metadata():
    lms = light_models()
    assert [lm.name for lm in lms] == list(LIGHT_MODEL_NAMES) and len(lms) == 9
    for lm in lms:
        assert lm.path.is_file()
        assert lm.input.dtype == np.float32 and lm.input.shape == (1, 3, 224, 224)
        n = lm.input.size
        np.testing.assert_array_equal(lm.input.ravel(), (np.arange(n) / n).astype(np.float32))
        assert lm.expected.dtype == np.float32 and lm.expected.shape[:2] == (1, 1000)
        assert lm.feeds == {lm.input_name: lm.input}


# All nine take ~5 s together (VGG-19 ~2.5 s), under the 10 s budget for unmarked tests.
@pytest.mark.parametrize("name", LIGHT_MODEL_NAMES)
def test_light_model_matches_shipped_output(name):
    (lm,) = [lm for lm in light_models() if lm.name == name]
    (out,) = run_ort(lm.path, lm.feeds)
    np.testing.assert_allclose(out, lm.expected, rtol=1e-3, atol=1e-6)


def test_save_with_external_data(tmp_path):
    model = model_zoo.lenet()
    before = model.SerializeToString()
    path = tmp_path / "lenet.onnx"
    data = save_with_external_data(model, path)
    assert model.SerializeToString() == before, "input model was mutated"
    assert data == tmp_path / "lenet.onnx.data"
    size = data.stat().st_size
    assert size >= sum(v.nbytes for v in inits(model).values() if v.nbytes >= 1024)
    assert path.stat().st_size < 20_000
    header = onnx.load(str(path), load_external_data=False)
    ext = [t.name for t in header.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert "conv2.weight" in ext and "fc1.weight" in ext
    loaded = onnx.load(str(path))
    ref = inits(model)
    for k, v in inits(loaded).items():
        np.testing.assert_array_equal(v, ref[k])
    feeds = random_inputs(model)
    np.testing.assert_array_equal(run_ort(path, feeds)[0], run_ort(model, feeds)[0])
    save_with_external_data(model, path)  # overwriting does not grow the data file
    assert data.stat().st_size == size


def test_cli_in_process(tmp_path, capsys):
    out = tmp_path / "r.onnx"
    assert model_zoo.main(["resnet18", "-o", str(out), "--image-size", "32", "--opset", "13"]) == 0
    m = onnx.load(str(out))
    onnx.checker.check_model(m)
    assert m.opset_import[0].version == 13
    assert m.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 32
    with pytest.raises(SystemExit):
        model_zoo.main(["mlp", "--image-size", "32"])
    assert "does not take --image-size" in capsys.readouterr().err


def test_cli_subprocess_default_filename(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(nnc.__file__).parents[1]))
    subprocess.run(
        [sys.executable, "-m", "nnc.testing.model_zoo", "lenet"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    m = onnx.load(str(tmp_path / "lenet.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert run_ort(m, random_inputs(m))[0].shape == (1, 10)
