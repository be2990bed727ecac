"""The per-layer profile table of a library built with ``--profile``.

``ProfileTable.build(names, ms, steps)`` joins what the library reports (``PFX_profile``:
step names and mean milliseconds per run) with what the compiler knows about each step
(``BuildResult.steps``: op, output shape, MACs); a library loaded from disk has only the
names. ``str(table)`` renders op, node, shape, ms, % of total and GFLOP/s (2 x MACs / time,
for the ops that do multiply-accumulates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProfileRow:
    """One step: its name, op kind, output shape, mean ms per run, share, GFLOP/s."""

    name: str
    op: str
    shape: tuple[int, ...]
    ms: float
    percent: float
    macs: int

    @property
    def gflops(self) -> float | None:
        """2 x MACs / time in GFLOP/s (None for ops without MACs or unmeasured)."""
        if not self.macs or self.ms <= 0:
            return None
        return 2 * self.macs / (self.ms * 1e-3) / 1e9


@dataclass
class ProfileTable:
    """Rows in execution order plus the total ms per run."""

    rows: list[ProfileRow] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(r.ms for r in self.rows)

    @staticmethod
    def build(
        names: Sequence[str], ms: Sequence[float], steps: Sequence[Any] | None
    ) -> ProfileTable:
        """Rows from the library's names/ms and (optionally) the compiler's step infos."""
        total = sum(ms) or 1.0
        rows = []
        for i, (name, t) in enumerate(zip(names, ms, strict=True)):
            info = steps[i] if steps is not None and i < len(steps) else None
            op = info.op if info else name.split(":")[0].split("#")[0]
            rows.append(
                ProfileRow(
                    name=name,
                    op=op,
                    shape=tuple(info.shape) if info else (),
                    ms=float(t),
                    percent=100.0 * t / total,
                    macs=int(info.macs) if info else 0,
                )
            )
        return ProfileTable(rows)

    def top(self, n: int = 10) -> list[ProfileRow]:
        """The ``n`` slowest steps."""
        return sorted(self.rows, key=lambda r: -r.ms)[:n]

    def table(self) -> str:
        """An aligned text table with a total line."""
        header = ("#", "op", "node", "shape", "ms", "%", "GFLOP/s")
        body = []
        for i, r in enumerate(self.rows):
            node = r.name.split(":", 1)[1] if ":" in r.name else ""
            g = r.gflops
            body.append(
                (
                    str(i),
                    r.op,
                    node,
                    "x".join(map(str, r.shape)) or "-",
                    f"{r.ms:.3f}",
                    f"{r.percent:.1f}",
                    f"{g:.1f}" if g is not None else "-",
                )
            )
        rows = [header, *body]
        widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
        right = {0, 4, 5, 6}
        lines = [
            "  ".join(
                c.rjust(w) if k in right else c.ljust(w)
                for k, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        macs = sum(r.macs for r in self.rows)
        total = self.total_ms
        line = f"total: {total:.3f} ms per run"
        if macs and total > 0:
            line += f", {2 * macs / (total * 1e-3) / 1e9:.1f} GFLOP/s overall"
        return "\n".join([*lines, line])

    def __str__(self) -> str:
        return self.table()
