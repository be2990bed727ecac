"""The by-reference weight attribute ``#nn.weight``.

Model weights are held as read-only numpy arrays, by reference: never unpacked into
Python floats. Equality and hashing use (dtype, shape, lazily computed blake2b digest of
the bytes), so two attributes holding equal tensors are equal (CSE, round trips).

Textual form: ``#nn.weight<"f32", [2, 3], "0x0000803F...">`` (inline hex, little-endian
bytes) or, inside a ``weight_sidecar`` context, ``#nn.weight<"f32", [2, 3], "@KEY">``
where KEY names an array in the side-car ``.npz`` file written next to the IR text.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from xdsl.ir import Data
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer

from nnc.ir.types import dtype_of_numpy, numpy_dtype

#: Tensors up to this many bytes print inline even inside a side-car context.
INLINE_LIMIT_BYTES = 256


class WeightData:
    """A read-only numpy array with a lazily computed content digest."""

    __slots__ = ("array", "_digest")

    def __init__(self, array: np.ndarray):
        arr = np.asarray(array)
        if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
            arr = np.ascontiguousarray(arr)
        if arr.flags.writeable:
            arr = arr.view()  # by reference: a read-only view, never a copy
            arr.flags.writeable = False
        self.array = arr
        self._digest: bytes | None = None

    @property
    def digest(self) -> bytes:
        """blake2b digest of dtype, shape and bytes (computed once)."""
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(str(self.array.dtype).encode())
            h.update(str(self.array.shape).encode())
            h.update(memoryview(self.array).cast("B"))
            self._digest = h.digest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WeightData):
            return NotImplemented
        if self is other:
            return True
        a, b = self.array, other.array
        return a.dtype == b.dtype and a.shape == b.shape and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)


@dataclass
class _Sidecar:
    arrays: dict[str, np.ndarray]


_SIDECAR: list[_Sidecar] = []


@contextlib.contextmanager
def weight_sidecar(arrays: dict[str, np.ndarray] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Print large weights as ``@KEY`` handles into (or parse them from) ``arrays``.

    When printing, the yielded dict is filled with KEY -> array; save it with
    ``np.savez``. When parsing, pass the loaded arrays.
    """
    store = _Sidecar(arrays if arrays is not None else {})
    _SIDECAR.append(store)
    try:
        yield store.arrays
    finally:
        _SIDECAR.pop()


@irdl_attr_definition
class WeightAttr(Data[WeightData]):
    """A constant tensor held by reference (see module docstring)."""

    name = "nn.weight"

    @staticmethod
    def from_array(array: np.ndarray) -> WeightAttr:
        """Wrap ``array`` (made read-only and contiguous; not copied when possible)."""
        return WeightAttr(WeightData(np.asarray(array)))

    @property
    def array(self) -> np.ndarray:
        """The read-only numpy array."""
        return self.data.array

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> WeightData:
        with parser.in_angle_brackets():
            dtype = numpy_dtype(parser.parse_str_literal())
            parser.parse_punctuation(",")
            shape = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_integer)
            parser.parse_punctuation(",")
            pos = parser.pos
            payload = parser.parse_str_literal()
        if payload.startswith("@"):
            if not _SIDECAR or payload[1:] not in _SIDECAR[-1].arrays:
                parser.raise_error(f"weight {payload} not found in side-car file", pos)
            arr = np.asarray(_SIDECAR[-1].arrays[payload[1:]])
        else:
            raw = bytes.fromhex(payload.removeprefix("0x"))
            arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
        if arr.dtype != dtype or arr.size != int(np.prod(shape, dtype=np.int64)):
            parser.raise_error("weight payload does not match its dtype and shape", pos)
        return WeightData(arr.reshape(shape))

    def print_parameter(self, printer: Printer) -> None:
        arr = self.data.array
        dims = ", ".join(str(d) for d in arr.shape)
        printer.print_string(f'<"{dtype_of_numpy(arr.dtype)}", [{dims}], ')
        if _SIDECAR and arr.nbytes > INLINE_LIMIT_BYTES:
            key = self.data.digest.hex()
            _SIDECAR[-1].arrays[key] = arr
            printer.print_string(f'"@{key}">')
        else:
            data = arr.astype(arr.dtype.newbyteorder("<")).tobytes().hex().upper()
            printer.print_string(f'"0x{data}">')
