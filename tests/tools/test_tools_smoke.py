"""The benchmark tools still run (a tiny model, two timed runs): they are not imported by
the package, so without this a refactor could break them silently. Timing values are not
checked (performance is measured by the tools, never by tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "tools"))

import bench  # noqa: E402
import compile_stats  # noqa: E402


def test_bench_prints_a_row_per_model_and_thread_count(capsys):
    assert bench.main(["--models", "mlp", "--runs", "2", "--warmup", "1", "--threads", "1"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mlp")]
    assert len(table) == 1


@pytest.mark.parametrize("model", ["mlp"])
def test_compile_stats_prints_workspace_and_intermediates(model, capsys):
    assert compile_stats.main(["--models", model, "--runs", "2"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {model}")]
    assert len(row) == 1 and len(row[0].split("|")) == 10
