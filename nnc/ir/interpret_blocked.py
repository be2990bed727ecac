"""Reference semantics of the blocked-layout ops (``nnc/ir/ops_blocked.py``); importing
this module registers them with the interpreter (``nnc.ir.interpret``)."""

from __future__ import annotations

import numpy as np

from nnc.ir.interpret import _conv_epilogue, _impl, _max_pool, conv2d
from nnc.ir.ops_blocked import ConvBlockedOp, FromBlockedOp, MaxPoolBlockedOp, ToBlockedOp, blocks
from nnc.ir.ops_compute import MaxPoolOp


def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N, ceil(C/block), H, W, block)`` with a zero tail."""
    n, c, h, w = x.shape
    cb = blocks(c, block)
    padded = np.zeros((n, cb * block, h, w), dtype=x.dtype)
    padded[:, :c] = x
    return np.ascontiguousarray(padded.reshape(n, cb, block, h, w).transpose(0, 1, 3, 4, 2))


def from_blocked(x: np.ndarray, channels: int) -> np.ndarray:
    """``(N, CB, H, W, c)`` -> ``(N, channels, H, W)``."""
    n, cb, h, w, c = x.shape
    flat = x.transpose(0, 1, 4, 2, 3).reshape(n, cb * c, h, w)
    return np.ascontiguousarray(flat[:, :channels])


@_impl(ToBlockedOp)
def _to_blocked(op: ToBlockedOp, x) -> np.ndarray:
    return to_blocked(x, op.prop("block"))


@_impl(FromBlockedOp)
def _from_blocked(op: FromBlockedOp, x) -> np.ndarray:
    return from_blocked(x, op.prop("channels"))


@_impl(ConvBlockedOp)
def _conv_blocked(op: ConvBlockedOp, x, w, *extra) -> np.ndarray:
    block = x.shape[-1]
    m, c = w.shape[0], w.shape[1] * op.prop("group")
    p = op.props_dict()
    y = conv2d(from_blocked(x, c), w, p["strides"], p["pads"], p["dilations"], p["group"])
    extras = list(extra)
    if op.operand_named("residual") is not None:
        extras[-1] = from_blocked(extras[-1], m).astype(np.float64)
    return to_blocked(_conv_epilogue(op, y, extras), block)


class _FlatPool:
    """``op``'s properties seen as an NCHW ``nn.max_pool`` (for the NCHW reference)."""

    PROPS = MaxPoolOp.PROPS
    infer = staticmethod(MaxPoolOp.infer)

    def __init__(self, op: MaxPoolBlockedOp):
        self.op = op

    def prop(self, name: str):
        return self.op.prop(name)

    def props_dict(self) -> dict:
        return self.op.props_dict()


@_impl(MaxPoolBlockedOp)
def _max_pool_blocked(op: MaxPoolBlockedOp, x) -> np.ndarray:
    n, cb, h, w, c = x.shape
    flat = x.transpose(0, 1, 4, 2, 3).reshape(n, cb * c, h, w)
    return to_blocked(_max_pool(_FlatPool(op), flat), c)
