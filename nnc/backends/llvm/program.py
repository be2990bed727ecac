"""The lowered form of a model: kernel calls (``Step``) over storage (``Buffer``).

Produced by ``lower.py``, consumed by ``plan.py`` (workspace offsets) and ``codegen.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnc.ir.types import numpy_dtype

#: ONNX TensorProto element type codes of nn dtype names.
ONNX_DTYPE_CODES = {"f32": 1, "u8": 2, "i8": 3, "i32": 6, "i64": 7, "bool": 9, "f16": 10}


def _freeze(value: Any) -> Any:
    """Lists -> tuples (recursively), numpy scalars -> Python, so kwargs hash."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class KernelSpec:
    """One kernel to emit: emitter name and its static keyword arguments (hashable)."""

    emitter: str
    kwargs: tuple[tuple[str, Any], ...]

    @staticmethod
    def make(emitter: str, **kwargs: Any) -> KernelSpec:
        return KernelSpec(emitter, tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))

    def kwargs_dict(self) -> dict[str, Any]:
        return dict(self.kwargs)


@dataclass(eq=False)
class Buffer:
    """Storage for one or more values: a model input/output, a weight or a temporary.

    ``kind`` is ``input``, ``output``, ``weight``, ``temp`` or ``view``; ``index`` numbers
    inputs, outputs and weights. A ``view`` is the ``nbytes`` at byte ``offset`` of
    ``parent`` (a concat's operand written in place into the concat's buffer); it is live
    whenever its parent is. Identity (not value) equality: one object per storage.
    """

    kind: str
    nbytes: int
    dtype: str = "f32"
    index: int = -1
    label: str = ""
    parent: Buffer | None = None
    offset: int = 0

    def root(self) -> Buffer:
        """The storage this buffer lives in (itself unless it is a view)."""
        return self.parent.root() if self.parent is not None else self


@dataclass
class Step:
    """Call kernel ``kernel`` on ``inputs`` then ``outputs`` (the kernel's arg order).

    ``label`` is the op name (``nn.conv``); ``name`` the ONNX node name when known;
    ``shape`` the first result's shape and ``macs`` its multiply-accumulates (profiles).
    """

    kernel: KernelSpec
    inputs: list[Buffer]
    outputs: list[Buffer]
    label: str = ""
    name: str = ""
    shape: tuple[int, ...] = ()
    macs: int = 0


@dataclass(frozen=True)
class IOSpec:
    """Name, static shape and dtype of a model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "f32"

    @property
    def dtype_code(self) -> int:
        """The ONNX TensorProto element type code (1 = float32)."""
        return ONNX_DTYPE_CODES[self.dtype]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * numpy_dtype(self.dtype).itemsize


@dataclass
class LoweredModel:
    """``main`` as kernel calls: steps in execution order and the buffers they touch."""

    inputs: list[IOSpec]
    outputs: list[IOSpec]
    steps: list[Step] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)

    def temps(self) -> list[Buffer]:
        """Distinct temporary buffers, in order of first appearance."""
        seen: dict[int, Buffer] = {}
        for step in self.steps:
            for buf in (*step.inputs, *step.outputs):
                buf = buf.root()
                if buf.kind == "temp":
                    seen.setdefault(id(buf), buf)
        return list(seen.values())

    def kernel_specs(self) -> list[KernelSpec]:
        """Distinct kernel specs in order of first use."""
        return list(dict.fromkeys(s.kernel for s in self.steps))
