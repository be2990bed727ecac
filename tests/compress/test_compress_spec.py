"""The ``--compress`` spec: parsing, order, errors, the report table, the CLI and nncz."""

from __future__ import annotations

import numpy as np
import pytest

import nnc
from nnc.compiler import compile_model
from nnc.compress.spec import insert_compression, parse_compress
from nnc.driver.nnc_main import main
from nnc.errors import InvalidOptionError
from nnc.ir.interpret import interpret


def test_spec_is_applied_in_the_deep_compression_order():
    spec = parse_compress("huffman,cluster=4bit,prune=0.8,lowrank=0.5,channels=0.25")
    assert spec.pipeline() == (
        "prune-channels{ratio=0.25 norm=l1},low-rank{ratio=0.5 scope=global},"
        "prune{scope=global sparsity=0.8},cluster{bits=4},"
        "codebook-kernels{min-params=262144 max-bits=4 gemm-only=true},compact-weights"
    )
    assert spec.huffman
    head, passes, tail = insert_compression("a,fold-batchnorm,fuse-activation,dce", spec)
    assert (head, tail) == ("a,fold-batchnorm", "fuse-activation,dce")
    assert (
        parse_compress("pattern=2:4,scope=local").pipeline()
        == 'prune{scope=local pattern="2:4"},compact-weights'
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ("prune=2", "out of range"),
        ("cluster=nine", "expects a number"),
        ("cp", "cp needs lowrank"),
        ("codebook,codebook=off", "contradict"),
        ("codebook=on", "unknown item"),
        ("quantize=8", "unknown item"),
        ("", "empty"),
    ],
)
def test_bad_specs_name_the_item(bad, message):
    with pytest.raises(InvalidOptionError, match=message):
        parse_compress(bad)


def test_compile_with_compress_reports_before_and_after(mlp, split):
    m = nnc.compile(mlp.onnx(), compress="prune=0.8,cluster=4bit,huffman", threads=1)
    x = split.x_test[:1]
    np.testing.assert_allclose(m.run([x])[0], interpret(m.module, [x])[0], rtol=1e-4, atol=1e-4)
    text = m.report.table()
    assert "compression (--compress):" in text
    assert "gemm0" in text and "gemm2" in text and "-> 19,500" in text
    line = next(s for s in m.report.compression_lines if "nncz" in s)
    ratio = float(line.rsplit(":", 1)[1].split("x")[0])
    assert ratio > 15  # pruning + 4-bit sharing + Huffman on the digits MLP


def test_lowrank_and_channels_rows_show_rank_and_macs(cnn):
    comp = compile_model(cnn.onnx(), build=False, compress="channels=0.25,lowrank=0.5")
    text = "\n".join(comp.report.compression_lines)
    assert "->" in text and "fewer" in text
    assert any(op.attributes.get("nn.rank") is not None for op in comp.module.walk())


def test_cli_compress_emits_a_decodable_nncz(tmp_path, mlp, split, capsys):
    import onnx

    from nnc.compress import nncz

    path = tmp_path / "mlp.onnx"
    onnx.save(mlp.onnx(), path)
    out = tmp_path / "mlp.nncz"
    code = main(
        [
            str(path),
            "--compress",
            "prune=0.8,cluster=4bit,huffman",
            "--emit",
            "nncz",
            "-o",
            str(out),
            "--report",
        ]
    )
    assert code == 0 and out.exists()
    assert "nncz (pruning + sharing + Huffman)" in capsys.readouterr().out
    assert out.stat().st_size < 0.1 * path.stat().st_size
    module = nncz.load(out)
    comp = compile_model(mlp.onnx(), build=False, compress="prune=0.8,cluster=4bit")
    x = split.x_test[:1]
    np.testing.assert_array_equal(interpret(module, [x])[0], interpret(comp.module, [x])[0])


def test_cli_bad_compress_is_one_line(tmp_path, mlp, capsys):
    import onnx

    path = tmp_path / "mlp.onnx"
    onnx.save(mlp.onnx(), path)
    assert main([str(path), "--compress", "cp", "-o", str(tmp_path / "x.so")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnc: error:") and "cp needs lowrank" in err and err.count("\n") == 1
    assert not (tmp_path / "x.so").exists()


def test_nncz_file_compiles_like_the_model(tmp_path, mlp, split):
    from nnc.compress import nncz

    comp = compile_model(mlp.onnx(), build=False, compress="prune=0.8,cluster=4bit")
    path = tmp_path / "m.nncz"
    nncz.save(comp.module, path)
    m = nnc.compile(str(path), threads=1)
    x = split.x_test[:1]
    np.testing.assert_allclose(m.run([x])[0], interpret(comp.module, [x])[0], rtol=1e-4, atol=1e-4)
    bad = tmp_path / "bad.nncz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(nnc.errors.NNCError, match="not a valid nncz file"):
        nnc.compile(str(bad))
