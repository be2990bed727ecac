"""Read an ONNX model and its tensors, turning every failure into a one-line ModelLoadError.

Contract:

* ``load_model(path_or_proto)`` returns ``(model, base_dir, label)``: a missing,
  unreadable, empty, truncated or corrupt file raises ModelLoadError naming the file and
  the problem. Weights are not read here.
* ``tensor_array(tensor, base_dir, label)`` returns a tensor's numpy array. External data
  is read from a file that must lie inside ``base_dir`` (the model's folder, symlinks
  resolved): an absolute location or one escaping the folder is a ModelLoadError.
  float64 tensors are narrowed to float32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnc.errors import ModelLoadError

IN_MEMORY = "<in-memory model>"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def load_model(
    model: str | os.PathLike | onnx.ModelProto,
) -> tuple[onnx.ModelProto, Path | None, str]:
    """(model proto, folder for external data or None, label for messages)."""
    if isinstance(model, onnx.ModelProto):
        return model, None, IN_MEMORY
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"import_onnx expects a path or onnx.ModelProto, got {type(model).__name__}"
        )
    path = Path(model)
    label = f"model '{path}'"
    if not path.exists():
        raise ModelLoadError(f"cannot read {label}: file not found")
    if path.is_dir():
        raise ModelLoadError(f"cannot read {label}: it is a directory")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {label}: {exc.strerror or _one_line(exc)}") from None
    if not data:
        raise ModelLoadError(f"cannot read {label}: the file is empty")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning-derived errors
        raise ModelLoadError(
            f"cannot parse {label}: not a valid ONNX protobuf, file truncated or corrupt "
            f"({_one_line(exc)})"
        ) from None
    return proto, path.resolve().parent, label


def check_structure(model: onnx.ModelProto, label: str) -> None:
    """Reject protobufs that parsed but cannot be a complete model (e.g. truncated files)."""
    if not model.HasField("graph"):
        raise ModelLoadError(f"invalid {label}: it has no graph (file truncated or not a model)")
    if not model.graph.output:
        raise ModelLoadError(f"invalid {label}: its graph has no outputs (file truncated?)")
    if not model.opset_import:
        raise ModelLoadError(f"invalid {label}: it declares no opset")


def tensor_array(tensor: TensorProto, base_dir: Path | None, label: str) -> np.ndarray:
    """The numpy array of ``tensor`` (float64 narrowed to float32)."""
    if tensor.data_location == TensorProto.EXTERNAL:
        tensor = _with_external_bytes(tensor, base_dir, label)
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as exc:
        raise ModelLoadError(
            f"invalid {label}: tensor '{tensor.name}' cannot be decoded ({_one_line(exc)})"
        ) from None
    return arr.astype(np.float32) if arr.dtype == np.float64 else arr


def _external_path(location: str, base_dir: Path, name: str, label: str) -> Path:
    escape = ModelLoadError(
        f"invalid {label}: external data location '{location}' of tensor '{name}' "
        "escapes the model's folder"
    )
    if not location or os.path.isabs(location) or Path(location).drive:
        raise escape
    root = os.path.realpath(base_dir)
    target = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, target]) != root:
        raise escape
    return Path(target)


def _byte_size(tensor: TensorProto) -> int | None:
    """Bytes of a fixed-width tensor's raw data (None for strings and sub-byte types)."""
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError):
        return None
    if tensor.data_type in (TensorProto.STRING, TensorProto.INT4, TensorProto.UINT4):
        return None
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def _with_external_bytes(tensor: TensorProto, base_dir: Path | None, label: str) -> TensorProto:
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if base_dir is None:
        raise ModelLoadError(
            f"invalid {label}: tensor '{tensor.name}' has external data '{location}'; "
            "load the model from its file path so the data can be found"
        )
    path = _external_path(location, base_dir, tensor.name, label)
    offset, length = int(info.get("offset", 0)), info.get("length")
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(-1 if length is None else int(length))
    except OSError as exc:
        raise ModelLoadError(
            f"cannot read external data '{location}' of tensor '{tensor.name}' in {label}: "
            f"{exc.strerror or _one_line(exc)}"
        ) from None
    want = int(length) if length is not None else _byte_size(tensor)
    if want is not None and len(data) < want:
        raise ModelLoadError(
            f"cannot read external data '{location}' of tensor '{tensor.name}' in {label}: "
            f"file is truncated ({len(data)} of {want} bytes)"
        )
    inline = TensorProto()
    inline.data_type = tensor.data_type
    inline.dims.extend(tensor.dims)
    inline.name = tensor.name
    inline.raw_data = data
    return inline
