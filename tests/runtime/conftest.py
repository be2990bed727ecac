"""Fixtures: small shared libraries exporting the nnc C ABI, built with the C compiler.

They let the runtime be tested without the compiler; ``tests/test_api.py`` covers
libraries built by nnc itself.
"""

import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("toy_abi.c")


def _cc(*args: str) -> None:
    subprocess.run(["cc", "-O1", "-fPIC", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def toy_lib(tmp_path_factory) -> Path:
    """libtoy.so: prefix ``toy``, y = 2*x + b with x: f32[2,3], b: f32[3]."""
    out = tmp_path_factory.mktemp("toy") / "libtoy.so"
    _cc("-shared", str(SOURCE), "-o", str(out))
    return out


@pytest.fixture(scope="session")
def build_toy():
    """``build_toy(out, "-DSCALE=3.0f")`` compiles the toy library with extra flags."""

    def build(out: Path, *flags: str) -> Path:
        _cc("-shared", *flags, str(SOURCE), "-o", str(out))
        return out

    return build


@pytest.fixture(scope="session")
def two_model_lib(tmp_path_factory) -> Path:
    """One .so holding the toy model twice, under prefixes ``a`` and ``b``."""
    d = tmp_path_factory.mktemp("two")
    for p in ("a", "b"):
        _cc("-c", f"-DPFX={p}", str(SOURCE), "-o", str(d / f"{p}.o"))
    _cc("-shared", str(d / "a.o"), str(d / "b.o"), "-o", str(d / "libtwo.so"))
    return d / "libtwo.so"


@pytest.fixture(scope="session")
def plain_lib(tmp_path_factory) -> Path:
    """A shared library that does not export the nnc ABI."""
    d = tmp_path_factory.mktemp("plain")
    (d / "plain.c").write_text("int plain_answer(void) { return 42; }\n")
    _cc("-shared", str(d / "plain.c"), "-o", str(d / "libplain.so"))
    return d / "libplain.so"
