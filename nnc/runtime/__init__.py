"""Run built models from Python: load an nnc library with ctypes, check buffers, call it.

``load_library(path, prefix=None)`` returns a ``NativeLibrary`` whose ``run(inputs)``
validates every input before native code runs and is safe to call from many threads.
"""

from nnc.runtime.library import NativeLibrary, TensorInfo, load_library, render_header
from nnc.runtime.symbols import find_prefix, nnc_prefixes

__all__ = [
    "NativeLibrary",
    "TensorInfo",
    "find_prefix",
    "load_library",
    "nnc_prefixes",
    "render_header",
]
