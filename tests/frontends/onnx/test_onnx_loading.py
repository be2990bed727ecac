"""Loading ONNX files: external data, and one-line errors for bad files and bad models."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from nnc.errors import ModelLoadError, NNCError, UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import make_model, single_node_model


def _conv_model(randn) -> onnx.ModelProto:
    return single_node_model(
        "Conv",
        [("x", (1, 3, 8, 8)), ("w", randn(0, 8, 3, 3, 3)), ("b", randn(1, 8))],
        pads=[1, 1, 1, 1],
    )


def _raises_one_line(exc_type, match, fn, *args):
    with pytest.raises(exc_type, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, NNCError)
    return str(info.value)


# ------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    msg = _raises_one_line(ModelLoadError, "not found", import_onnx, path)
    assert str(path) in msg


def test_directory_is_not_a_model(tmp_path):
    _raises_one_line(ModelLoadError, "directory", import_onnx, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    _raises_one_line(ModelLoadError, "empty", import_onnx, str(path))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, randn, fraction):
    data = _conv_model(randn).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    msg = _raises_one_line(ModelLoadError, "cut.onnx", import_onnx, path)
    assert "truncated" in msg or "invalid" in msg or "cannot parse" in msg


def test_file_cut_after_its_first_field(tmp_path, randn):
    """A cut at a field boundary parses, but the model has no graph."""
    path = tmp_path / "cut.onnx"
    path.write_bytes(_conv_model(randn).SerializeToString()[:2])  # just ir_version
    _raises_one_line(ModelLoadError, "cut.onnx.*no graph", import_onnx, path)


@pytest.mark.parametrize("seed", range(4))
def test_corrupt_file(tmp_path, seed):
    path = tmp_path / "junk.onnx"
    path.write_bytes(np.random.default_rng(seed).bytes(300))
    _raises_one_line(ModelLoadError, "junk.onnx", import_onnx, path)


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a protobuf\n" * 10)
    _raises_one_line(ModelLoadError, "notes.onnx", import_onnx, path)


# --------------------------------------------------------------------- external data


def test_external_data_loads(tmp_path, randn, check):
    model = _conv_model(randn)
    path = tmp_path / "model.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (tmp_path / "weights.bin").exists()
    check(str(path), {"x": randn(2, 1, 3, 8, 8)})
    check(path, {"x": randn(2, 1, 3, 8, 8)})  # PathLike too
    check(onnx.load(str(path)), {"x": randn(2, 1, 3, 8, 8)})  # data loaded by onnx


def test_external_data_in_subfolder(tmp_path, randn, check):
    model = _conv_model(randn)
    (tmp_path / "data").mkdir()
    path = tmp_path / "model.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="data/w.bin",
        size_threshold=0,
    )
    check(path, {"x": randn(2, 1, 3, 8, 8)})


def _save_with_location(tmp_path, randn, location: str):
    """Save a model whose weight points at ``location`` (written where it points)."""
    model = _conv_model(randn)
    w = model.graph.initializer[0]
    (tmp_path / "model" / "sub").mkdir(parents=True, exist_ok=True)
    target = os.path.normpath(os.path.join(tmp_path / "model", location))
    with open(target, "wb") as f:
        f.write(w.raw_data or onnx.numpy_helper.to_array(w).tobytes())
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    path = tmp_path / "model" / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../evil.bin", "sub/../../evil.bin"])
def test_external_data_escaping_the_folder_is_rejected(tmp_path, randn, location):
    path = _save_with_location(tmp_path, randn, location)
    _raises_one_line(ModelLoadError, "escapes the model's folder", import_onnx, path)


def test_external_data_absolute_location_is_rejected(tmp_path, randn):
    path = _save_with_location(tmp_path, randn, str(tmp_path / "abs.bin"))
    _raises_one_line(ModelLoadError, "escapes the model's folder", import_onnx, path)


def test_external_data_symlink_escaping_the_folder_is_rejected(tmp_path, randn):
    path = _save_with_location(tmp_path, randn, "../outside.bin")
    os.symlink(tmp_path / "outside.bin", tmp_path / "model" / "link.bin")
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data[0].value = "link.bin"
    path.write_bytes(model.SerializeToString())
    _raises_one_line(ModelLoadError, "escapes the model's folder", import_onnx, path)


def test_external_data_missing_file(tmp_path, randn):
    path = _save_with_location(tmp_path, randn, "w.bin")
    (tmp_path / "model" / "w.bin").unlink()
    _raises_one_line(ModelLoadError, "w.bin", import_onnx, path)


def test_external_data_truncated_file(tmp_path, randn):
    path = _save_with_location(tmp_path, randn, "w.bin")
    data = tmp_path / "model" / "w.bin"
    data.write_bytes(data.read_bytes()[:10])
    _raises_one_line(ModelLoadError, "w.bin", import_onnx, path)


def test_external_data_of_in_memory_model_needs_a_path(tmp_path, randn):
    path = _save_with_location(tmp_path, randn, "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    _raises_one_line(ModelLoadError, "file path", import_onnx, model)


# ------------------------------------------------------------------------ bad models


def test_unknown_op_names_op_node_and_opset():
    model = single_node_model("Frobnicate", [("x", (2,))], opset=17)
    _raises_one_line(
        UnsupportedOpError,
        r"^unsupported op 'Frobnicate' \(node 'frobnicate0', opset 17\)$",
        import_onnx,
        model,
    )


def test_unnamed_node_is_numbered():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sin", ["a"], ["y"])]
    model = make_model(nodes, {"x": (2,)}, ["y"], opset=13)
    _raises_one_line(
        UnsupportedOpError, r"unsupported op 'Sin' \(node #1, opset 13\)", import_onnx, model
    )


def test_custom_domain_op():
    node = helper.make_node("FusedThing", ["x"], ["y"], domain="com.example", name="f")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    _raises_one_line(UnsupportedOpError, "com.example.FusedThing.*node 'f'", import_onnx, model)


@pytest.mark.parametrize("opset", [7, 8, 22])
def test_unsupported_opset(opset):
    model = single_node_model("Relu", [("x", (2,))], opset=opset)
    _raises_one_line(UnsupportedOpError, f"opset {opset}", import_onnx, model)


def test_op_outside_its_opset_range():
    model = single_node_model("Gelu", [("x", (2,))], opset=17)
    _raises_one_line(
        UnsupportedOpError, r"unsupported op 'Gelu' \(node 'gelu0', opset 17\)", import_onnx, model
    )


def test_non_float_input_is_unsupported():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["ids"], ["y"])],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _raises_one_line(UnsupportedOpError, "model input 'ids'.*INT64", import_onnx, model)


def test_undefined_tensor_is_a_load_error():
    model = make_model(
        [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], {"x": (2,)}, ["y"]
    )
    _raises_one_line(ModelLoadError, "'add'.*'ghost'", import_onnx, model)


def test_model_without_graph():
    _raises_one_line(ModelLoadError, "no graph", import_onnx, onnx.ModelProto(ir_version=8))


def test_inconsistent_shapes_name_the_node(randn):
    model = single_node_model("MatMul", [("a", (2, 3)), ("b", randn(0, 4, 5))])
    _raises_one_line(UnsupportedOpError, "MatMul node 'matmul0'", import_onnx, model)
