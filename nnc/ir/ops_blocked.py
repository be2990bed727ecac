"""Blocked channel layout (NCHWc): layout transforms and the blocked convolution.

A *blocked* tensor of an NCHW tensor ``x (N, C, H, W)`` with block ``c`` has shape
``(N, ceil(C/c), H, W, c)`` and holds ``x[n, cb*c + l, h, w]`` at ``[n, cb, h, w, l]``.
Channels ``>= C`` of the last block (the *tail*) are zero after ``nn.to_blocked`` and
``nn.conv_blocked``; layout-agnostic ops (elementwise, ``nn.max_pool_blocked``) may leave
any values there, and no op reads them into real channels: ``nn.from_blocked`` drops
them and ``nn.conv_blocked`` only reduces over its weight's ``C`` input channels.

* ``nn.to_blocked {block}``: NCHW -> blocked, zero-padded tail.
* ``nn.from_blocked {channels}``: blocked -> NCHW, keeping the first ``channels``.
* ``nn.conv_blocked``: ``nn.conv`` (same window and epilogue properties, same OIHW
  weight operand) on a blocked input, producing a blocked output with the block of its
  input; the optional ``residual`` is blocked like the output, ``bias`` is ``(M,)``.
  Semantics: ``to_blocked(conv(from_blocked(x, C), w) + bias + from_blocked(res, M))``.
  Group 1, or depthwise (``group = C = M``: weight ``(C, 1, KH, KW)``).
* ``nn.max_pool_blocked``: ``nn.max_pool`` (same properties) on a blocked tensor.

Produced by the ``nchwc-layout`` pass; compiled by ``kernels/conv_direct.py`` (blocked
activations) and ``kernels/blocked.py`` (transforms).
"""

from __future__ import annotations

from typing import Any

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.ops_compute import CONV_WINDOW_PROPS, EPILOGUE_PROPS, ConvOp, MaxPoolOp


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def blocks(channels: int, block: int) -> int:
    """Blocks of ``block`` channels holding ``channels`` channels."""
    return -(-channels // block)


@nn_op("nn.to_blocked", operands=("x",), props={"block": ("int", 16)})
class ToBlockedOp(NNOp):
    """NCHW ``(N, C, H, W)`` -> ``(N, ceil(C/block), H, W, block)``, zero-padded tail."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, c = ins[0], p["block"]
        _require(x.rank == 4, f"to_blocked expects a rank-4 NCHW tensor, got {x.shape}")
        _require(c >= 1, f"to_blocked: block must be >= 1, got {c}")
        n, ch, h, w = x.shape
        return [TensorSpec((n, blocks(ch, c), h, w, c), x.dtype)]


@nn_op("nn.from_blocked", operands=("x",), props={"channels": ("int", None)})
class FromBlockedOp(NNOp):
    """``(N, CB, H, W, c)`` -> NCHW ``(N, channels, H, W)`` (drops the tail)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, ch = ins[0], p["channels"]
        _require(x.rank == 5, f"from_blocked expects a rank-5 blocked tensor, got {x.shape}")
        n, cb, h, w, c = x.shape
        _require(
            ch >= 1 and blocks(ch, c) == cb,
            f"from_blocked: {ch} channels do not fill {cb} blocks of {c}",
        )
        return [TensorSpec((n, ch, h, w), x.dtype)]


@nn_op(
    "nn.conv_blocked",
    operands=("x", "w"),
    optional=("bias", "residual"),
    props={**CONV_WINDOW_PROPS, **EPILOGUE_PROPS},
)
class ConvBlockedOp(NNOp):
    """``nn.conv`` on blocked activations (see the module docstring)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, w = ins[0], ins[1]
        _require(x.rank == 5, f"conv_blocked expects a rank-5 blocked x, got {x.shape}")
        _require(w.rank == 4, f"conv_blocked expects a rank-4 weight, got {w.shape}")
        n, cb, h, wd, c = x.shape
        m, cin = w.shape[0], w.shape[1] * p["group"]
        _require(
            p["group"] == 1 or (cin == m == p["group"] and w.shape[1] == 1),
            f"conv_blocked supports group 1 or depthwise, got group {p['group']} for {w.shape}",
        )
        _require(blocks(cin, c) == cb, f"conv_blocked: {cin} channels do not fill {cb} blocks")
        flat = TensorSpec((n, cin, h, wd), x.dtype)
        out = ConvOp.infer([flat, w], p)[0]
        _, _, oh, ow = out.shape
        blocked = TensorSpec((n, blocks(m, c), oh, ow, c), x.dtype)
        extras = ins[2:]
        for extra in extras:
            _require(
                extra.shape in ((m,), blocked.shape),
                f"conv_blocked epilogue operand shape {extra.shape}",
            )
        return [blocked]


@nn_op("nn.max_pool_blocked", operands=("x",), props=dict(MaxPoolOp.PROPS))
class MaxPoolBlockedOp(NNOp):
    """``nn.max_pool`` on a blocked tensor (windows over H and W, per channel lane)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.rank == 5, f"max_pool_blocked expects a rank-5 blocked x, got {x.shape}")
        n, cb, h, w, c = x.shape
        flat = MaxPoolOp.infer([TensorSpec((n, cb * c, h, w), x.dtype)], p)[0]
        return [TensorSpec((n, cb, *flat.shape[2:], c), x.dtype)]


BLOCKED_OPS = [ToBlockedOp, FromBlockedOp, ConvBlockedOp, MaxPoolBlockedOp]
