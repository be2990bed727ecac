"""Run the FileCheck tests of this folder (one .mlir per pass) under lit, from pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_filecheck_suite_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from lit.main import main; main()", "-v", str(HERE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Passed" in proc.stdout


def test_every_pass_has_a_filecheck_file() -> None:
    from nnc.passes import PASSES

    missing = [n for n in PASSES if not (HERE / f"{n.replace('-', '_')}.mlir").exists()]
    assert not missing, f"passes without a FileCheck test: {missing}"
