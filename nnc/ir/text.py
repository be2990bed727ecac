"""Textual IR (MLIR generic syntax) for tests, debugging and ``nnc-opt``.

Large weights can go to a side-car ``.npz`` next to the text (``FILE.mlir`` ->
``FILE.weights.npz``); small ones print inline as hex. Text is not a model-scale format.
"""

from __future__ import annotations

import io
import os

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer

from nnc.ir.dialect import make_context
from nnc.ir.weights import weight_sidecar


def module_to_text(module: ModuleOp) -> str:
    """Print ``module`` with every weight inline."""
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue() + "\n"


def parse_module(text: str, weights: dict[str, np.ndarray] | None = None) -> ModuleOp:
    """Parse textual IR; ``weights`` resolves ``@KEY`` side-car handles."""
    with weight_sidecar(dict(weights or {})):
        module = Parser(make_context(), text).parse_module()
    return module


def sidecar_path(path: str) -> str:
    """The side-car weight file belonging to IR file ``path``."""
    return os.path.splitext(path)[0] + ".weights.npz"


def save_text(module: ModuleOp, path: str) -> None:
    """Write ``module`` to ``path``; weights above the inline limit go to the side-car."""
    out = io.StringIO()
    with weight_sidecar() as arrays:
        Printer(stream=out).print_op(module)
    with open(path, "w") as f:
        f.write(out.getvalue() + "\n")
    if arrays:
        np.savez(sidecar_path(path), **arrays)


def load_text(path: str) -> ModuleOp:
    """Read IR written by ``save_text`` (with its side-car weights if present)."""
    weights = {}
    side = sidecar_path(path)
    if os.path.exists(side):
        with np.load(side) as data:
            weights = {k: data[k] for k in data.files}
    with open(path) as f:
        return parse_module(f.read(), weights)
