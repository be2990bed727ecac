"""Run the float model in the interpreter over calibration feeds and keep, for every
float32 value of ``main`` (arguments and op results), a sample of its elements.

At most ``MAX_SAMPLES`` elements are kept per value (a fixed-seed random subsample once
more arrive; the observed min and max are always kept), so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from nnc.ir.builder import main_func
from nnc.ir.interpret import evaluate_op
from nnc.ir.ops_compute import ConstantOp

MAX_SAMPLES = 1 << 20


def run_recording(module: ModuleOp, feed: Sequence[np.ndarray]) -> dict[SSAValue, np.ndarray]:
    """Every value of ``main`` on one feed (the interpreter's environment)."""
    block = main_func(module).body.blocks[0]
    env: dict[SSAValue, np.ndarray] = dict(zip(block.args, (np.asarray(a) for a in feed)))
    for op in block.ops:
        if isinstance(op, func.ReturnOp):
            break
        for value, arr in zip(op.results, evaluate_op(op, [env[v] for v in op.operands])):
            env[value] = arr
    return env


def collect_samples(
    module: ModuleOp, feeds: Sequence[Sequence[np.ndarray]], seed: int = 0
) -> dict[SSAValue, np.ndarray]:
    """value -> float32 sample of its elements over all feeds (see module docstring)."""
    rng = np.random.default_rng(seed)
    parts: dict[SSAValue, list[np.ndarray]] = {}
    for feed in feeds:
        for value, arr in run_recording(module, feed).items():
            if arr.dtype != np.float32 or arr.size == 0 or isinstance(value.owner, ConstantOp):
                continue
            parts.setdefault(value, []).append(arr.ravel())
    out = {}
    for value, chunks in parts.items():
        flat = np.concatenate(chunks)
        if flat.size > MAX_SAMPLES:
            keep = rng.choice(flat.size, MAX_SAMPLES, replace=False)
            flat = np.concatenate([flat[keep], [flat.min(), flat.max()]])
        out[value] = flat
    return out
