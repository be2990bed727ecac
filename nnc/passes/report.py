"""What the passes of one pipeline run did, as (pass name, message) lines.

``run_pipeline`` makes a ``PassReport`` the active one while the passes run; a pass
calls ``record(name, message)`` to say what it changed, or why it changed nothing.
Outside a pipeline run (a pass applied directly) ``record`` does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class PassReport:
    """Lines of (pass name, message), in the order the passes reported them."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, pass_name: str, message: str) -> None:
        """Append one line."""
        self.lines.append((pass_name, message))

    def messages(self, pass_name: str) -> list[str]:
        """Every message recorded by pass ``pass_name``."""
        return [m for p, m in self.lines if p == pass_name]

    def __str__(self) -> str:
        return "\n".join(f"{p}: {m}" for p, m in self.lines)


_ACTIVE: ContextVar[PassReport | None] = ContextVar("nnc_active_pass_report", default=None)


@contextlib.contextmanager
def collecting(report: PassReport) -> Iterator[PassReport]:
    """Make ``report`` the one ``record`` writes to, for the duration of the block."""
    token = _ACTIVE.set(report)
    try:
        yield report
    finally:
        _ACTIVE.reset(token)


def record(pass_name: str, message: str) -> None:
    """Add a line to the active report (no-op when no pipeline is collecting)."""
    report = _ACTIVE.get()
    if report is not None:
        report.add(pass_name, message)
