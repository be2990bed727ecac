"""Static workspace planning: buffer lifetimes over the step order, then offsets.

Only intermediates live in the workspace (model inputs and outputs are the caller's
buffers, weights are globals). A temporary is live from the step that writes it to the
last step that reads it, inclusive at both ends, so a kernel's output never overlaps its
inputs. A kernel's scratch is live during its own step only.

Offsets come from the greedy-by-size heuristic: buffers sorted by decreasing size, each
placed at the lowest 64-byte aligned offset that does not overlap any already placed
buffer whose lifetime intersects its own. The peak is the end of the highest buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from nnc.backends.llvm.program import Buffer, KernelSpec, LoweredModel

ALIGNMENT = 64


def align_up(n: int, alignment: int = ALIGNMENT) -> int:
    """``n`` rounded up to a multiple of ``alignment``."""
    return (n + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Lifetime:
    """A buffer of ``size`` bytes live during steps ``start..end`` (inclusive)."""

    key: Hashable
    size: int
    start: int
    end: int

    def overlaps(self, other: Lifetime) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class Placement:
    """Offsets (bytes, aligned) of each key and the peak workspace size."""

    offsets: dict[Hashable, int]
    peak: int


def lifetimes(
    steps: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]], sizes: dict[Hashable, int]
) -> list[Lifetime]:
    """Lifetimes of the keys in ``sizes`` from per-step (reads, writes).

    A key is live from its first write (or first read) to its last read (or write).
    Keys not in ``sizes`` (inputs, outputs, weights) are ignored.
    """
    first: dict[Hashable, int] = {}
    last: dict[Hashable, int] = {}
    for t, (reads, writes) in enumerate(steps):
        for key in (*reads, *writes):
            if key in sizes:
                first.setdefault(key, t)
                last[key] = t
    return [Lifetime(k, sizes[k], first[k], last[k]) for k in first]


def assign_offsets(items: Sequence[Lifetime], alignment: int = ALIGNMENT) -> Placement:
    """Greedy by size: place each buffer at the lowest aligned offset free during its life.

    Zero-size buffers get offset 0 and take no space.
    """
    order = sorted(range(len(items)), key=lambda i: (-items[i].size, items[i].start, i))
    placed: list[tuple[int, int, Lifetime]] = []  # (offset, aligned size, lifetime)
    offsets: dict[Hashable, int] = {}
    peak = 0
    for i in order:
        item = items[i]
        size = align_up(item.size, alignment)
        if size == 0:
            offsets[item.key] = 0
            continue
        busy = sorted((off, off + sz) for off, sz, other in placed if other.overlaps(item))
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        placed.append((offset, size, item))
        offsets[item.key] = offset
        peak = max(peak, offset + size)
    return Placement(offsets, peak)


@dataclass(frozen=True)
class WorkspacePlan:
    """Where every temporary and kernel scratch lives in the workspace.

    ``temp_offsets`` maps ``id(buffer)``; ``scratch_offsets[t]`` is step ``t``'s scratch
    offset (absent when the kernel needs none). ``peak_bytes`` is the workspace size
    (64-byte multiple); ``intermediate_bytes`` the sum of all temporaries' sizes (what
    a planner that never reuses memory would need, scratch excluded); ``scratch_bytes``
    the sum of all steps' scratch sizes.
    """

    temp_offsets: dict[int, int]
    scratch_offsets: dict[int, int]
    peak_bytes: int
    intermediate_bytes: int
    scratch_bytes: int

    def offset_of(self, buf: Buffer) -> int:
        return self.temp_offsets[id(buf)]


def plan_workspace(model: LoweredModel, scratch_of: Callable[[KernelSpec], int]) -> WorkspacePlan:
    """Plan the workspace of ``model``; ``scratch_of(kernel)`` gives its scratch bytes."""
    temps = model.temps()
    sizes: dict[Hashable, int] = {id(b): b.nbytes for b in temps}
    steps = []
    scratch_total = 0
    for t, step in enumerate(model.steps):
        writes = [id(b.root()) for b in step.outputs]  # a view keeps its parent live
        scratch = scratch_of(step.kernel)
        if scratch:
            sizes[("scratch", t)] = scratch
            writes.append(("scratch", t))
            scratch_total += scratch
        steps.append(([id(b.root()) for b in step.inputs], writes))
    placement = assign_offsets(lifetimes(steps, sizes))
    temp_offsets = {k: v for k, v in placement.offsets.items() if isinstance(k, int)}
    scratch_offsets = {k[1]: v for k, v in placement.offsets.items() if isinstance(k, tuple)}
    return WorkspacePlan(
        temp_offsets,
        scratch_offsets,
        placement.peak,
        sum(b.nbytes for b in temps),
        scratch_total,
    )
