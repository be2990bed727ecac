"""Static sizes of one NCHW convolution, shared by the conv kernel emitters.

``ConvShape`` holds the input/kernel sizes and window attributes (strides, dilations,
pads as top/left/bottom/right, group) and derives per-group channels and the output
size. Each emitter subclasses it to add its own tile description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ConvShape:
    """Sizes of one conv: input ``n, c, h, w``, ``m`` filters of ``kh x kw``, windows."""

    n: int
    c: int
    h: int
    w: int
    m: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    pb: int
    pr: int
    group: int

    @property
    def cg(self) -> int:
        """Input channels per group."""
        return self.c // self.group

    @property
    def mg(self) -> int:
        """Output channels per group."""
        return self.m // self.group

    @property
    def oh(self) -> int:
        """Output height."""
        return (self.h + self.pt + self.pb - self.dh * (self.kh - 1) - 1) // self.sh + 1

    @property
    def ow(self) -> int:
        """Output width."""
        return (self.w + self.pl + self.pr - self.dw * (self.kw - 1) - 1) // self.sw + 1

    @classmethod
    def checked(
        cls,
        x_shape: Shape,
        w_shape: Shape,
        strides: Shape,
        pads: Shape,
        dilations: Shape,
        group: int,
        *extra: Any,
    ):
        """An instance of ``cls`` (``extra`` fills its own fields, e.g. the tile).

        Raises ValueError for an inconsistent group or an empty output.
        """
        n, c, h, w = x_shape
        m, cg, kh, kw = w_shape
        if c % group or m % group or cg != c // group:
            raise ValueError(f"conv: bad group {group} for x {x_shape}, w {w_shape}")
        shape = cls(
            n, c, h, w, m, kh, kw, *strides, *dilations, pads[0], pads[1], pads[2], pads[3],
            group, *extra,
        )  # fmt: skip
        if shape.oh <= 0 or shape.ow <= 0:
            raise ValueError(f"conv: empty output for x {x_shape}, w {w_shape}")
        return shape
