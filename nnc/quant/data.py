"""Calibration data: an ``.npz`` file (one array per model input name, first axis =
samples) or a Python iterable of feeds (dicts by input name, or lists in input order).
Everything is normalised to a list of feeds (lists of arrays in model input order) whose
leading dimension matches the model's batch size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nnc.errors import InvalidOptionError
from nnc.ir.types import DYNAMIC

Feed = list[np.ndarray]


def _split(arr: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Batches of the model's batch size from stacked samples ``(N, *shape[1:])``; an
    array of ``(B, *shape)`` (a stack of whole feeds) is split along its first axis."""
    if arr.ndim == len(shape) + 1:
        return list(arr)
    batch = shape[0] if shape else 1
    if batch in (DYNAMIC, -1) or arr.shape[0] == batch:
        return [arr]
    n = arr.shape[0] // batch
    if n == 0:
        raise InvalidOptionError(
            f"calibration array has {arr.shape[0]} samples, fewer than the batch size {batch}"
        )
    return [arr[i * batch : (i + 1) * batch] for i in range(n)]


def load_feeds(
    data: Any, names: Sequence[str], shapes: Sequence[tuple[int, ...]], limit: int | None = None
) -> list[Feed]:
    """Feeds for a model with inputs ``names``/``shapes`` from ``data`` (see module doc)."""
    if isinstance(data, str | os.PathLike):
        try:
            with np.load(os.fspath(data)) as npz:
                arrays = {k: np.asarray(npz[k]) for k in npz.files}
        except (OSError, ValueError) as err:
            raise InvalidOptionError(f"cannot read calibration data '{data}': {err}") from None
        data = arrays
    if isinstance(data, Mapping):  # name -> stacked samples
        missing = [n for n in names if n not in data]
        if missing:
            raise InvalidOptionError(
                f"calibration data has no array for input(s) {', '.join(missing)} "
                f"(has: {', '.join(sorted(data))})"
            )
        columns = [_split(np.asarray(data[n]), tuple(s)) for n, s in zip(names, shapes)]
        feeds = [list(f) for f in zip(*columns)]
    elif isinstance(data, Iterable):
        feeds = []
        for item in data:
            if isinstance(item, Mapping):
                feeds.append([np.asarray(item[n]) for n in names])
            elif isinstance(item, np.ndarray):
                feeds.append([item])
            else:
                feeds.append([np.asarray(a) for a in item])
    else:
        raise InvalidOptionError(
            f"calibration data must be a .npz path or an iterable, got {data!r}"
        )
    out = []
    for feed in feeds:
        fixed = []
        for arr, shape in zip(feed, shapes):
            arr = np.asarray(arr)
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            if len(arr.shape) == len(shape) - 1:
                arr = arr[None]
            fixed.append(arr)
        out.append(fixed)
    if not out:
        raise InvalidOptionError("calibration data is empty")
    return out[:limit] if limit else out
