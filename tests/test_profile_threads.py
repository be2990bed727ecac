"""``nnc.compile(threads=..., profile=...)``, ``--threads``/``--profile`` and the profile table."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from test_api import conv_relu_gemm, sample

import nnc
from nnc.driver.nnc_main import main as nnc_main
from nnc.errors import InvalidOptionError, NNCError
from nnc.testing import model_zoo


@pytest.fixture(scope="module")
def profiled() -> nnc.CompiledModel:
    return nnc.compile(conv_relu_gemm(), profile=True, threads=2)


def test_profile_table_lists_every_step(profiled):
    x = sample()
    for _ in range(3):
        profiled.run([x])
    table = profiled.profile()
    ops = [r.op for r in table.rows]
    assert ops == ["nn.conv", "nn.gemm"]  # relu fused into the conv, flatten aliased
    assert all(r.ms >= 0 for r in table.rows) and table.total_ms > 0
    assert abs(sum(r.percent for r in table.rows) - 100) < 1e-6
    assert table.rows[0].shape == (1, 4, 8, 8) and table.rows[0].macs == 4 * 64 * 27
    text = table.table()
    assert "GFLOP/s" in text and "nn.conv" in text and text.splitlines()[-1].startswith("total")
    profiled.profile(reset=True)
    assert profiled.profile().total_ms == 0


def test_profile_symbols_only_with_profile(profiled, tmp_path):
    plain = nnc.compile(conv_relu_gemm(), threads=1)
    with pytest.raises(NNCError, match="without profiling"):
        plain.profile()
    lib = ctypes.CDLL(profiled._library.path)
    assert hasattr(lib, "nnc_profile") and hasattr(lib, "nnc_profile_reset")
    assert not hasattr(ctypes.CDLL(plain._library.path), "nnc_profile")
    plain.save(tmp_path / "libplain.so")
    assert "nnc_profile" not in (tmp_path / "libplain.h").read_text()
    assert "nnc_set_num_threads" in (tmp_path / "libplain.h").read_text()


def test_thread_setting(profiled):
    single = nnc.compile(conv_relu_gemm(), threads=1)
    assert single.num_threads == 1 and single.set_num_threads(4) == 1
    x = sample()
    np.testing.assert_array_equal(single.run([x])[0], profiled.run([x])[0])
    with pytest.raises(InvalidOptionError, match="--threads"):
        nnc.compile(conv_relu_gemm(), threads=0)


@pytest.mark.parametrize(
    "name", ["transformer_block", pytest.param("resnet18_cifar", marks=pytest.mark.slow)]
)
def test_zoo_threads_are_bitwise_equal(name):
    model = model_zoo.ZOO[name]()
    feeds = model_zoo.random_inputs(model, seed=0)
    one = nnc.compile(model, threads=1)
    two = nnc.compile(model, threads=2)
    assert one.num_threads == 1 and two.num_threads == 2
    want = one.run(feeds)
    for _ in range(2):
        for a, b in zip(want, two.run(feeds), strict=True):
            np.testing.assert_array_equal(a, b)


def test_cli_threads_and_profile(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(conv_relu_gemm().SerializeToString())
    out = tmp_path / "libm.so"
    assert nnc_main([str(path), "--threads", "2", "--profile", "-o", str(out)]) == 0
    assert "m_profile" not in (tmp_path / "libm.h").read_text()  # prefix is nnc
    assert "nnc_profile(" in (tmp_path / "libm.h").read_text()
    assert nnc_main([str(path), "--threads", "0", "-o", str(out)]) == 2
    assert "--threads" in capsys.readouterr().err
