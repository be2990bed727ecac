"""Registry of ONNX op converters and constant folders, keyed by op type and opset range.

A *converter* turns one ONNX node into nn ops: ``fn(node: NodeContext) -> list[Output]``
where each output is an SSA value, or a numpy array when the result is known at compile
time. A *folder* evaluates a node in numpy when every present input is compile-time
known: ``fn(node: NodeContext, *arrays) -> list[np.ndarray]`` (absent optional inputs
are passed as ``None``). The importer tries the folder first, then the converter.

Several registrations may share an op type when their opset ranges do not overlap
(e.g. ``Squeeze`` takes ``axes`` as an attribute before opset 13 and as an input after).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Default-domain opsets the frontend accepts (inclusive).
MIN_OPSET, MAX_OPSET = 9, 21


@dataclass(frozen=True)
class _Entry:
    first: int
    last: int
    fn: Callable[..., Any]


_CONVERTERS: dict[str, list[_Entry]] = {}
_FOLDERS: dict[str, list[_Entry]] = {}


def _register(
    table: dict[str, list[_Entry]], op_types: tuple[str, ...], opsets: tuple[int, int]
) -> Callable:
    first, last = opsets

    def wrap(fn: Callable) -> Callable:
        for op_type in op_types:
            entries = table.setdefault(op_type, [])
            for e in entries:
                if e.first <= last and first <= e.last:
                    raise ValueError(f"{op_type}: opsets {opsets} overlap an earlier registration")
            entries.append(_Entry(first, last, fn))
        return fn

    return wrap


def converter(*op_types: str, opsets: tuple[int, int] = (MIN_OPSET, MAX_OPSET)) -> Callable:
    """Register a converter for ``op_types`` at default-domain opsets ``opsets`` (inclusive)."""
    return _register(_CONVERTERS, op_types, opsets)


def folder(*op_types: str, opsets: tuple[int, int] = (MIN_OPSET, MAX_OPSET)) -> Callable:
    """Register a numpy folder for ``op_types`` at opsets ``opsets`` (inclusive)."""
    return _register(_FOLDERS, op_types, opsets)


def _lookup(table: dict[str, list[_Entry]], op_type: str, opset: int) -> Callable | None:
    for e in table.get(op_type, ()):
        if e.first <= opset <= e.last:
            return e.fn
    return None


def find_converter(op_type: str, opset: int) -> Callable | None:
    """The converter for ``op_type`` at ``opset``, or None."""
    return _lookup(_CONVERTERS, op_type, opset)


def find_folder(op_type: str, opset: int) -> Callable | None:
    """The numpy folder for ``op_type`` at ``opset``, or None."""
    return _lookup(_FOLDERS, op_type, opset)


def supported_ops() -> dict[str, list[tuple[int, int]]]:
    """Op type -> opset ranges handled (converters and folders merged), for docs and tests."""
    out: dict[str, list[tuple[int, int]]] = {}
    for table in (_CONVERTERS, _FOLDERS):
        for op_type, entries in table.items():
            ranges = out.setdefault(op_type, [])
            ranges += [(e.first, e.last) for e in entries if (e.first, e.last) not in ranges]
    return dict(sorted(out.items()))
