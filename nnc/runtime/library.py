"""Load a library built by nnc with ctypes and run it from Python.

The library exports the C ABI of the design document under a prefix ``PFX``
(``PFX_run_with_workspace``, ``PFX_workspace_size``, ``PFX_num_inputs``,
``PFX_input_name/rank/shape/dtype`` and the output counterparts). ``NativeLibrary``
reads the introspection functions once, at load time, and then:

* checks every input (count, names, dtype, exact shape) BEFORE any native code runs,
  raising ``InputMismatchError`` with a one-line message; there is no implicit casting;
* makes non-contiguous or misaligned inputs contiguous (a copy, never a cast);
* allocates fresh 64-byte-aligned outputs on every call (one ``np.empty`` for all of
  them) and runs the reentrant ``PFX_run_with_workspace`` on a 64-byte-aligned workspace
  private to the calling thread (allocated on its first call, reused afterwards), so one
  library may run from many threads at once (ctypes releases the GIL during the call).

The per-call path is kept short (~5 us of Python for a small model): the ctypes
pointer-array types, the expected (shape, dtype) pairs and the output layout are
computed once at load time, and well-formed inputs (exact dtype and shape, C-contiguous,
aligned) are checked without allocating; anything else goes through the full check.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nnc.errors import InputMismatchError, ModelLoadError, NNCError
from nnc.runtime.symbols import find_prefix

#: ONNX TensorProto element-type codes used by the C ABI.
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int16),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
    12: np.dtype(np.uint32),
    13: np.dtype(np.uint64),
}
#: Alignment of the workspace and output buffers handed to native code.
ALIGNMENT = 64
#: Ranks above this are taken as a corrupt library rather than a model.
_MAX_RANK = 32

_VOIDP_ARRAY = ctypes.POINTER(ctypes.c_void_p)

#: Absolute path -> identity of the file when this process first loaded it.
_FIRST_LOADED: dict[str, tuple[int, ...]] = {}
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class TensorInfo:
    """Name, static shape and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Size of the dense buffer in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {dims} {self.dtype}"


def aligned_empty(shape: Sequence[int], dtype: np.dtype, align: int = ALIGNMENT) -> np.ndarray:
    """An uninitialised C-contiguous array whose data pointer is ``align``-byte aligned."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + nbytes].view(dtype).reshape(tuple(shape))


class NativeLibrary:
    """A loaded nnc library: its ABI functions, input/output descriptions and ``run``."""

    def __init__(self, path: str | os.PathLike, prefix: str | None = None):
        """Load ``path``; find the prefix from the exported symbols when ``prefix`` is None.

        Raises ModelLoadError if the file is missing, cannot be loaded, or does not export
        the nnc C ABI under the prefix.
        """
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(self.path):
            raise ModelLoadError(f"{os.fspath(path)}: no such library file")
        self.prefix = prefix if prefix else find_prefix(self.path)
        try:
            self._dll = self._dlopen()
        except OSError as err:
            raise ModelLoadError(f"cannot load {os.fspath(path)}: {err}") from None
        self._run = self._function(
            "run_with_workspace", ctypes.c_int32, ctypes.c_void_p, _VOIDP_ARRAY, _VOIDP_ARRAY
        )
        self.workspace_size = int(self._function("workspace_size", ctypes.c_size_t)())
        self._set_threads = self._optional("set_num_threads", ctypes.c_int32, ctypes.c_int32)
        self._get_threads = self._optional("num_threads", ctypes.c_int32)
        self._profile = self._optional(
            "profile",
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_double),
        )
        self._profile_reset = self._optional("profile_reset", None)
        self.inputs = self._read_infos("input")
        self.outputs = self._read_infos("output")
        self._prepare_fast_path()

    def _dlopen(self) -> ctypes.CDLL:
        """dlopen the file; a file replaced since this process loaded it goes via a copy.

        The dynamic loader never loads a path twice: it would hand back the library first
        loaded from that path even after the file was rebuilt, so a changed file is loaded
        from a private copy (removed when this object goes away).
        """
        st = os.stat(self.path)
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _LOAD_LOCK:
            first = _FIRST_LOADED.setdefault(self.path, identity)
        if first == identity:
            return ctypes.CDLL(self.path)
        private = tempfile.mkdtemp(prefix="nnc-lib-")
        weakref.finalize(self, shutil.rmtree, private, True)
        copy = os.path.join(private, os.path.basename(self.path))
        shutil.copy(self.path, copy)
        return ctypes.CDLL(copy)

    def _function(self, suffix: str, restype, *argtypes):
        name = f"{self.prefix}_{suffix}"
        try:
            fn = getattr(self._dll, name)
        except AttributeError:
            raise ModelLoadError(
                f"{self.path} does not export {name} (not built by nnc, or a different prefix)"
            ) from None
        fn.restype = restype
        fn.argtypes = list(argtypes)
        return fn

    def _optional(self, suffix: str, restype, *argtypes):
        """An ABI function newer libraries export, or None."""
        try:
            return self._function(suffix, restype, *argtypes)
        except ModelLoadError:
            return None

    def num_threads(self) -> int:
        """``PFX_num_threads()`` (1 for libraries that predate the threading ABI)."""
        return int(self._get_threads()) if self._get_threads else 1

    def set_num_threads(self, n: int) -> int:
        """``PFX_set_num_threads(n)``; returns the new count."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise NNCError(f"set_num_threads needs an int, got {n!r}")
        return int(self._set_threads(max(min(n, 1 << 20), -1))) if self._set_threads else 1

    def profile(self, reset: bool = False) -> tuple[list[str], list[float]]:
        """Step names and mean ms per run from ``PFX_profile`` (NNCError if not built so)."""
        if self._profile is None:
            raise NNCError(
                f"{self.path} was built without profiling (compile with profile=True / --profile)"
            )
        count = int(self._profile(None, None))
        names = (ctypes.c_char_p * max(count, 1))()
        ms = (ctypes.c_double * max(count, 1))()
        self._profile(names, ms)
        if reset:
            self._profile_reset()
        decoded = [(names[i] or b"").decode("utf-8", "replace") for i in range(count)]
        return decoded, list(ms[:count])

    def _read_infos(self, kind: str) -> list[TensorInfo]:
        count = self._function(f"num_{kind}s", ctypes.c_int32)()
        name_of = self._function(f"{kind}_name", ctypes.c_char_p, ctypes.c_int32)
        rank_of = self._function(f"{kind}_rank", ctypes.c_int32, ctypes.c_int32)
        shape_of = self._function(f"{kind}_shape", ctypes.POINTER(ctypes.c_int64), ctypes.c_int32)
        dtype_of = self._function(f"{kind}_dtype", ctypes.c_int32, ctypes.c_int32)
        if not 0 <= count <= 1 << 16:
            raise ModelLoadError(f"{self.path}: {self.prefix}_num_{kind}s returned {count}")
        infos = []
        for i in range(count):
            raw_name = name_of(i)
            name = raw_name.decode("utf-8", "replace") if raw_name else f"{kind}{i}"
            rank, code = rank_of(i), dtype_of(i)
            if not 0 <= rank <= _MAX_RANK:
                raise ModelLoadError(f"{self.path}: {kind} '{name}' has rank {rank}")
            dims = shape_of(i) if rank else None
            shape = tuple(int(dims[d]) for d in range(rank)) if rank else ()
            if any(d < 0 for d in shape):
                raise ModelLoadError(f"{self.path}: {kind} '{name}' has a dynamic shape {shape}")
            if code not in DTYPE_CODES:
                raise ModelLoadError(f"{self.path}: {kind} '{name}' has unknown dtype code {code}")
            infos.append(TensorInfo(name, shape, DTYPE_CODES[code]))
        return infos

    # -- running ---------------------------------------------------------------------

    def check_inputs(
        self, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray] | np.ndarray
    ) -> list[np.ndarray]:
        """Validate ``inputs`` against the model and return them in model order.

        Accepts a list/tuple in model order, a dict keyed by input name, or a bare array
        for a single-input model. Returned arrays are C-contiguous and aligned (copied
        only when needed). Raises InputMismatchError on any count, name, dtype or shape
        mismatch; dtypes must match exactly (no casting).
        """
        expected = ", ".join(t.name for t in self.inputs) or "none"
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, Mapping):
            unknown = [k for k in inputs if k not in {t.name for t in self.inputs}]
            if unknown:
                raise InputMismatchError(
                    f"unknown input name '{unknown[0]}'; the model's inputs are: {expected}"
                )
            missing = [t.name for t in self.inputs if t.name not in inputs]
            if missing:
                raise InputMismatchError(
                    f"missing input '{missing[0]}'; the model's inputs are: {expected}"
                )
            values = [inputs[t.name] for t in self.inputs]
        elif isinstance(inputs, Sequence) and not isinstance(inputs, str | bytes):
            values = list(inputs)
            if len(values) != len(self.inputs):
                raise InputMismatchError(
                    f"the model takes {len(self.inputs)} input(s) ({expected}), got {len(values)}"
                )
        else:
            raise InputMismatchError(
                f"inputs must be a list or a dict of numpy arrays, got {type(inputs).__name__}"
            )
        return [_check_one(info, value) for info, value in zip(self.inputs, values)]

    def _prepare_fast_path(self) -> None:
        """Precompute what every ``run`` needs: pointer-array types, the expected input
        signature, and the offsets of the outputs inside one aligned allocation."""
        self._in_array_type = ctypes.c_void_p * max(len(self.inputs), 1)
        self._out_array_type = ctypes.c_void_p * max(len(self.outputs), 1)
        self._signature = [(t.shape, t.dtype) for t in self.inputs]
        self._names = [t.name for t in self.inputs]
        self._workspace_bytes = max(self.workspace_size, 1)
        self._local = threading.local()
        layout, offset = [], 0
        for t in self.outputs:
            layout.append((offset, t.nbytes, t.dtype, t.shape))
            offset += -(-max(t.nbytes, 1) // ALIGNMENT) * ALIGNMENT
        self._out_layout = layout
        self._out_bytes = max(offset, 1)

    def _workspace(self) -> int:
        """Address of the calling thread's private aligned workspace (made on first use)."""
        local = self._local
        address = getattr(local, "address", None)
        if address is None:
            local.buffer = aligned_empty((self._workspace_bytes,), np.dtype(np.uint8))
            address = local.address = local.buffer.ctypes.data
        return address

    def _fast_inputs(self, inputs) -> list[np.ndarray] | None:
        """``inputs`` in model order if it is a list/tuple/dict (or a bare array) of
        well-formed arrays, else None (the caller then runs the full ``check_inputs``)."""
        kind = type(inputs)
        if kind is dict:
            if len(inputs) != len(self._names):
                return None
            try:
                inputs = [inputs[name] for name in self._names]
            except KeyError:
                return None
        elif kind is np.ndarray:
            inputs = [inputs]
        elif (kind is not list and kind is not tuple) or len(inputs) != len(self._signature):
            return None
        for value, (shape, dtype) in zip(inputs, self._signature):
            if (
                type(value) is not np.ndarray
                or value.dtype != dtype
                or value.shape != shape
                or not value.flags.c_contiguous
                or not value.flags.aligned
            ):
                return None
        return inputs

    def _new_outputs(self) -> tuple[list[np.ndarray], list[int]]:
        """Fresh outputs carved from one 64-byte-aligned allocation, and their addresses."""
        raw = np.empty(self._out_bytes + ALIGNMENT, dtype=np.uint8)
        base = raw.__array_interface__["data"][0]
        start = -base % ALIGNMENT
        outputs, addresses = [], []
        for offset, nbytes, dtype, shape in self._out_layout:
            lo = start + offset
            outputs.append(raw[lo : lo + nbytes].view(dtype).reshape(shape))
            addresses.append(base + lo)
        return outputs, addresses

    def run(
        self, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray] | np.ndarray
    ) -> list[np.ndarray]:
        """Check ``inputs``, run the model, return freshly allocated outputs (model order)."""
        arrays = self._fast_inputs(inputs)
        if arrays is None:
            arrays = self.check_inputs(inputs)
        outputs, out_addresses = self._new_outputs()
        in_ptrs = self._in_array_type(*[a.__array_interface__["data"][0] for a in arrays])
        out_ptrs = self._out_array_type(*out_addresses)
        status = self._run(self._workspace(), in_ptrs, out_ptrs)
        if status != 0:
            raise NNCError(f"{self.prefix}_run_with_workspace failed with status {status}")
        return outputs

    def __repr__(self) -> str:
        ins = "; ".join(str(t) for t in self.inputs)
        outs = "; ".join(str(t) for t in self.outputs)
        return f"NativeLibrary({self.path!r}, {self.prefix!r}, inputs=[{ins}], outputs=[{outs}])"


def _check_one(info: TensorInfo, value: object) -> np.ndarray:
    """One input checked against ``info``: exact dtype and shape, then contiguous+aligned."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype != info.dtype:
        raise InputMismatchError(
            f"input '{info.name}': expected dtype {info.dtype}, got {array.dtype} "
            f"(no implicit casting; convert with .astype(np.{info.dtype.name}))"
        )
    if array.shape != info.shape:
        raise InputMismatchError(
            f"input '{info.name}': expected shape {info.shape}, got {array.shape}"
        )
    return np.require(array, requirements=("C_CONTIGUOUS", "ALIGNED"))


def load_library(path: str | os.PathLike, prefix: str | None = None) -> NativeLibrary:
    """Load an nnc-built shared library; the prefix is discovered when not given."""
    return NativeLibrary(path, prefix)


def render_header(prefix: str, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> str:
    """A C header declaring the ABI of a library (used when its own ``.h`` is not at hand)."""
    guard = f"{prefix.upper()}_H"
    lines = [f"/* C ABI of an nnc-built model, prefix '{prefix}'. */"]
    for kind, infos in (("input", inputs), ("output", outputs)):
        lines += [f"/* {kind} {i}: {t} */" for i, t in enumerate(infos)]
    lines += [
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        f"int32_t {prefix}_run(const void *const *inputs, void *const *outputs);",
        f"int32_t {prefix}_run_with_workspace(void *workspace, const void *const *inputs,"
        " void *const *outputs);",
        f"size_t {prefix}_workspace_size(void);",
    ]
    for kind in ("input", "output"):
        lines += [
            f"int32_t {prefix}_num_{kind}s(void);",
            f"const char *{prefix}_{kind}_name(int32_t i);",
            f"int32_t {prefix}_{kind}_rank(int32_t i);",
            f"const int64_t *{prefix}_{kind}_shape(int32_t i);",
            f"int32_t {prefix}_{kind}_dtype(int32_t i);",
        ]
    lines += ["#ifdef __cplusplus", "}", "#endif", f"#endif /* {guard} */", ""]
    return "\n".join(lines)
