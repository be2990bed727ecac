"""The ctypes runtime over hand-written libraries exporting the nnc C ABI."""

import ctypes
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.errors import InputMismatchError, ModelLoadError
from nnc.runtime import NativeLibrary, find_prefix, load_library, nnc_prefixes, render_header
from nnc.runtime.symbols import exported_symbols


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3), dtype=np.float32), rng.standard_normal(3, dtype=np.float32)


def _calls(lib: NativeLibrary) -> int:
    fn = getattr(lib._dll, f"{lib.prefix}_calls")
    fn.restype = ctypes.c_int32
    return fn()


def test_prefix_is_found_from_the_dynamic_symbol_table(toy_lib):
    assert find_prefix(toy_lib) == "toy"
    assert load_library(toy_lib).prefix == "toy"


def test_elf_reader_agrees_with_nm(toy_lib):
    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(toy_lib)], capture_output=True, text=True, check=True
    ).stdout
    from_nm = {line.split()[-1] for line in nm.splitlines() if line.split()[-2] in "TtWwDdBbRr"}
    assert {s for s in from_nm if s.startswith("toy_")} == {
        s for s in exported_symbols(toy_lib) if s.startswith("toy_")
    }


def test_several_prefixes_need_an_explicit_choice(two_model_lib):
    assert nnc_prefixes(two_model_lib) == ["a", "b"]
    with pytest.raises(ModelLoadError, match="several models.*a, b"):
        load_library(two_model_lib)
    assert load_library(two_model_lib, prefix="b").prefix == "b"


def test_library_without_the_abi_is_rejected(plain_lib, toy_lib, tmp_path):
    with pytest.raises(ModelLoadError, match="not a library built by nnc"):
        load_library(plain_lib)
    with pytest.raises(ModelLoadError, match="does not export nope_run_with_workspace"):
        load_library(toy_lib, prefix="nope")
    with pytest.raises(ModelLoadError, match="no such library"):
        load_library(tmp_path / "missing.so")
    fake = tmp_path / "libfake.so"
    fake.write_text("not a library\n")
    with pytest.raises(ModelLoadError):
        load_library(fake, prefix="nnc")


def test_a_rebuilt_library_at_the_same_path_is_loaded_afresh(build_toy, tmp_path):
    path = tmp_path / "libtoy.so"
    build_toy(path)
    first = load_library(path)
    os.replace(build_toy(tmp_path / "next.so", "-DSCALE=3.0f"), path)
    second = load_library(path)
    x, b = _inputs()
    np.testing.assert_array_equal(first.run([x, b])[0], 2 * x + b)
    np.testing.assert_array_equal(second.run([x, b])[0], 3 * x + b)


def test_introspection(toy_lib):
    lib = load_library(toy_lib)
    assert [(t.name, t.shape, t.dtype) for t in lib.inputs] == [
        ("x", (2, 3), np.float32),
        ("b", (3,), np.float32),
    ]
    assert [(t.name, t.shape, t.dtype) for t in lib.outputs] == [("y", (2, 3), np.float32)]
    assert lib.workspace_size == 24


def test_run_list_dict_and_bare_array_orders(toy_lib):
    lib = load_library(toy_lib)
    x, b = _inputs()
    (y,) = lib.run([x, b])
    np.testing.assert_array_equal(y, 2 * x + b)
    (y2,) = lib.run({"b": b, "x": x})
    np.testing.assert_array_equal(y2, y)
    assert y.flags.c_contiguous and y.ctypes.data % 64 == 0


def test_non_contiguous_inputs_are_made_contiguous(toy_lib):
    lib = load_library(toy_lib)
    wide = np.arange(12, dtype=np.float32).reshape(2, 6)
    x = wide[:, ::2]
    b = np.arange(6, dtype=np.float32)[::2]
    assert not x.flags.c_contiguous and not b.flags.c_contiguous
    (y,) = lib.run([x, b])
    np.testing.assert_array_equal(y, 2 * x + b)


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda x, b: [x], r"^the model takes 2 input\(s\) \(x, b\), got 1$"),
        (lambda x, b: [x, b, b], r"takes 2 input\(s\) \(x, b\), got 3"),
        (
            lambda x, b: {"x": x, "bias": b},
            r"^unknown input name 'bias'; the model's inputs are: x, b$",
        ),
        (lambda x, b: {"x": x}, r"^missing input 'b'; the model's inputs are: x, b$"),
        (
            lambda x, b: [x.astype(np.float64), b],
            r"^input 'x': expected dtype float32, got float64 \(no implicit casting",
        ),
        (lambda x, b: [x, b.astype(np.int64)], r"^input 'b': expected dtype float32, got int64"),
        (lambda x, b: [x.T, b], r"^input 'x': expected shape \(2, 3\), got \(3, 2\)$"),
        (lambda x, b: [x[None], b], r"^input 'x': expected shape \(2, 3\), got \(1, 2, 3\)$"),
        (lambda x, b: "xb", r"inputs must be a list or a dict"),
    ],
)
def test_bad_inputs_fail_before_native_code(toy_lib, make_inputs, message):
    lib = load_library(toy_lib)
    before = _calls(lib)
    with pytest.raises(InputMismatchError, match=message) as info:
        lib.run(make_inputs(*_inputs()))
    assert "\n" not in str(info.value)
    assert _calls(lib) == before


def test_concurrent_runs_use_private_workspaces(toy_lib):
    lib = load_library(toy_lib)
    cases = [_inputs(seed) for seed in range(64)]

    def run(case):
        return lib.run(list(case))[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, cases))
    for (x, b), y in zip(cases, results):
        np.testing.assert_array_equal(y, 2 * x + b)


def test_rendered_header_declares_the_abi(toy_lib, tmp_path):
    lib = load_library(toy_lib)
    (tmp_path / "toy.h").write_text(render_header("toy", lib.inputs, lib.outputs))
    (tmp_path / "use.c").write_text(
        '#include "toy.h"\nint main(void) { return toy_num_inputs() == 2 && '
        "toy_input_shape(0)[1] == 3 && toy_workspace_size() == 24 ? 0 : 1; }\n"
    )
    exe = tmp_path / "use"
    subprocess.run(["cc", str(tmp_path / "use.c"), str(toy_lib), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], check=False).returncode == 0


def test_each_thread_reuses_its_own_workspace(toy_lib):
    lib = load_library(toy_lib)
    x, b = _inputs()
    lib.run([x, b])
    mine = lib._workspace()
    lib.run([x, b])
    assert lib._workspace() == mine and mine % 64 == 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        theirs = pool.submit(lambda: (lib.run([x, b]), lib._workspace())[1]).result()
    assert theirs != mine and theirs % 64 == 0


def test_outputs_are_fresh_arrays_on_every_call(toy_lib):
    lib = load_library(toy_lib)
    (x1, b1), (x2, b2) = _inputs(1), _inputs(2)
    (y1,) = lib.run((x1, b1))
    (y2,) = lib.run((x2, b2))
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, 2 * x1 + b1)
    np.testing.assert_array_equal(y2, 2 * x2 + b2)
    assert y1.flags.writeable and y1.flags.owndata is False  # a view of its own buffer


def test_misaligned_and_read_only_inputs_are_accepted(toy_lib):
    lib = load_library(toy_lib)
    x, b = _inputs(3)
    raw = np.zeros(x.nbytes + 1, dtype=np.uint8)
    shifted = raw[1:].view(np.float32).reshape(2, 3)
    shifted[...] = x
    assert not shifted.flags.aligned
    frozen = b.copy()
    frozen.flags.writeable = False
    (y,) = lib.run({"x": shifted, "b": frozen})
    np.testing.assert_array_equal(y, 2 * x + b)


_VARIANTS = ["ok", "f64", "i32", "shape", "rank", "strided", "fortran", "list_value", "missing"]


@given(
    x_variant=st.sampled_from(_VARIANTS),
    b_variant=st.sampled_from(_VARIANTS),
    container=st.sampled_from(["list", "tuple", "dict"]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_every_input_is_checked_before_native_code(toy_lib, x_variant, b_variant, container, seed):
    """Property: run either returns the right result or raises a one-line
    InputMismatchError without entering native code, whatever the inputs look like."""
    lib = _cached(toy_lib)
    x, b = _inputs(seed)

    def variant(a: np.ndarray, kind: str):
        return {
            "ok": lambda: a,
            "f64": lambda: a.astype(np.float64),
            "i32": lambda: a.astype(np.int32),
            "shape": lambda: np.concatenate([a, a], axis=-1),
            "rank": lambda: a[None],
            "strided": lambda: np.repeat(a, 2, axis=-1)[..., ::2],
            "fortran": lambda: np.asfortranarray(a),
            "list_value": lambda: a.tolist(),
            "missing": lambda: None,
        }[kind]()

    vx, vb = variant(x, x_variant), variant(b, b_variant)
    values = [("x", vx), ("b", vb)]
    present = [(k, v) for k, v in values if v is not None]
    if container == "dict":
        feed = dict(present)
    else:
        feed = [v for _, v in present]
        feed = tuple(feed) if container == "tuple" else feed
    # a nested list becomes float64 under np.asarray: rejected as a dtype mismatch
    valid = all(k in ("ok", "strided", "fortran") for k in (x_variant, b_variant))
    before = _calls(lib)
    if valid:
        (y,) = lib.run(feed)
        np.testing.assert_array_equal(y, 2 * x + b)
        assert _calls(lib) == before + 1
    else:
        with pytest.raises(InputMismatchError) as info:
            lib.run(feed)
        assert "\n" not in str(info.value)
        assert _calls(lib) == before


_LIBS: dict = {}


def _cached(path) -> NativeLibrary:
    if path not in _LIBS:
        _LIBS[path] = load_library(path)
    return _LIBS[path]
