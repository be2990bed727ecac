"""examples/embed_c/main.c: a C program linked against a library built by ``nnc``."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

EXAMPLE = Path(__file__).parents[2] / "examples" / "embed_c" / "main.c"
NNC = Path(sys.executable).with_name("nnc")


def _parse(stdout: str) -> dict[str, np.ndarray]:
    """``name d0xd1`` / values line pairs printed by the example."""
    lines = stdout.strip().splitlines()
    outputs = {}
    for head, values in zip(lines[::2], lines[1::2]):
        name, dims = head.split()
        shape = tuple(int(d) for d in dims.split("x"))
        outputs[name] = np.array([float(v) for v in values.split()], np.float32).reshape(shape)
    return outputs


def test_c_app_links_the_library_and_prints_the_model_outputs(model_file, model_proto, tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "main.c")
    subprocess.run([str(NNC), str(model_file), "-o", "libnet.so"], cwd=tmp_path, check=True)
    subprocess.run(
        [
            "cc",
            "main.c",
            "-o",
            "app",
            "-L.",
            "-lnet",
            "-Wl,-rpath,.",
            "-Wall",
            "-Wextra",
            "-Werror",
        ],
        cwd=tmp_path,
        check=True,
    )
    proc = subprocess.run(["./app"], cwd=tmp_path, capture_output=True, text=True, check=True)

    x = ((np.arange(3 * 8 * 8) % 17 - 8) / 8).astype(np.float32).reshape(1, 3, 8, 8)
    sess = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {"x": x})[0]
    outputs = _parse(proc.stdout)
    assert list(outputs) == ["y"]
    np.testing.assert_allclose(outputs["y"], expected, rtol=1e-4, atol=1e-5)


def test_c_app_links_the_static_archive(model_file, tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "main.c")
    subprocess.run(
        [str(NNC), str(model_file), "--emit", "static", "-o", "libnet.a"], cwd=tmp_path, check=True
    )
    subprocess.run(["cc", "main.c", "libnet.a", "-lm", "-o", "app"], cwd=tmp_path, check=True)
    (tmp_path / "libnet.a").unlink()  # statically linked: the app stands alone
    proc = subprocess.run(["./app"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert _parse(proc.stdout)["y"].shape == (1, 10)
