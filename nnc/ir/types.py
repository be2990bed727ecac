"""Tensor types of the nn dialect: element types, dtype names, dynamic dimensions.

Shapes are tuples of ints where a dynamic dimension is ``DYNAMIC`` (xDSL's
``DYNAMIC_INDEX``), never a raw -1.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    Float16Type,
    Float32Type,
    IntegerType,
    Signedness,
    TensorType,
    f16,
    f32,
    i1,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, SSAValue

DYNAMIC = DYNAMIC_INDEX
u8 = IntegerType(8, Signedness.UNSIGNED)
u16 = IntegerType(16, Signedness.UNSIGNED)  # bf16 weight storage (raw bits)

_DTYPE_TO_ELEMENT: dict[str, Attribute] = {
    "f32": f32,
    "f16": f16,
    "i64": i64,
    "i32": i32,
    "i8": i8,
    "u8": u8,
    "u16": u16,
    "bool": i1,
}
_DTYPE_TO_NUMPY = {
    "f32": np.float32,
    "f16": np.float16,
    "i64": np.int64,
    "i32": np.int32,
    "i8": np.int8,
    "u8": np.uint8,
    "u16": np.uint16,
    "bool": np.bool_,
}
_NUMPY_TO_DTYPE = {np.dtype(v): k for k, v in _DTYPE_TO_NUMPY.items()}


def element_type(dtype: str) -> Attribute:
    """The xDSL element type for a dtype name (``f32``, ``i64``...)."""
    return _DTYPE_TO_ELEMENT[dtype]


def dtype_of_element(elem: Attribute) -> str:
    """The dtype name of an xDSL element type."""
    if isinstance(elem, Float32Type):
        return "f32"
    if isinstance(elem, Float16Type):
        return "f16"
    for name, attr in _DTYPE_TO_ELEMENT.items():
        if attr == elem:
            return name
    raise ValueError(f"unsupported element type {elem}")


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype for a dtype name."""
    return np.dtype(_DTYPE_TO_NUMPY[dtype])


def dtype_of_numpy(dt: np.dtype) -> str:
    """The dtype name of a numpy dtype (raises ValueError if unsupported)."""
    try:
        return _NUMPY_TO_DTYPE[np.dtype(dt)]
    except KeyError:
        raise ValueError(f"unsupported numpy dtype {dt}") from None


def tensor_type(shape: tuple[int, ...] | list[int], dtype: str = "f32") -> TensorType:
    """A ranked tensor type; ``DYNAMIC`` marks a dynamic dimension."""
    return TensorType(element_type(dtype), [int(d) for d in shape])


def shape_of(value: SSAValue | Attribute) -> tuple[int, ...]:
    """The shape of a tensor-typed SSA value or of a TensorType."""
    t = value.type if isinstance(value, SSAValue) else value
    assert isinstance(t, TensorType), f"expected a tensor type, got {t}"
    return t.get_shape()


def dtype_of(value: SSAValue | Attribute) -> str:
    """The dtype name of a tensor-typed SSA value or of a TensorType."""
    t = value.type if isinstance(value, SSAValue) else value
    assert isinstance(t, TensorType), f"expected a tensor type, got {t}"
    return dtype_of_element(t.element_type)


def is_static(shape: tuple[int, ...]) -> bool:
    """True when no dimension is dynamic."""
    return all(d != DYNAMIC for d in shape)


def num_elements(shape: tuple[int, ...]) -> int:
    """Number of elements of a static shape."""
    n = 1
    for d in shape:
        n *= d
    return n
