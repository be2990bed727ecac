"""The C ABI from C: test_c_abi.c against a generated .h/.so, and two prefixes in one program."""

from __future__ import annotations

import os
import subprocess

import numpy as np
from llvm_testlib import C_DRIVER, concat_residual, small_cnn, transformer_head, write_io

from nnc.backends.llvm import build, write_artifact
from nnc.ir.interpret import interpret


def test_c_driver_against_header_and_so(tmp_path):
    module = transformer_head()
    result = build(module, prefix="tfm")
    write_artifact(result, tmp_path / "libtfm.so", "so")
    header = write_artifact(result, tmp_path / "libtfm.h", "header")
    exe = tmp_path / "driver"
    subprocess.run(
        [
            "cc",
            "-std=c99",
            "-Wall",
            "-Werror",
            "-include",
            str(header),
            "-DNNC_PREFIX=tfm",
            str(C_DRIVER),
            "-o",
            str(exe),
            f"-L{tmp_path}",
            "-ltfm",
            "-lm",
            f"-Wl,-rpath,{tmp_path}",
        ],
        check=True,
    )
    ins, exp = write_io(module, result, tmp_path)
    proc = subprocess.run([exe, ins, exp], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK 1 inputs 2 outputs")


def test_two_prefixes_in_one_program(tmp_path):
    """Two models' objects link into one executable (no symbol clashes) and both run."""
    models = {"cnn": small_cnn(), "res": concat_residual()}
    main = [
        "#include <stdio.h>",
        '#include "cnn.h"',
        '#include "res.h"',
        "static float xa[1*3*16*16], ya[10], xb[1*4*8*8], yb[1*4*8*8];",
        "int main(void) {",
        "  const void *ia[] = {xa}, *ib[] = {xb}; void *oa[] = {ya}, *ob[] = {yb};",
        "  for (int i = 0; i < 768; i++) xa[i] = (float)(i % 7) - 3.0f;",
        "  for (int i = 0; i < 256; i++) xb[i] = (float)(i % 5) - 2.0f;",
        "  if (cnn_run(ia, oa) || res_run(ib, ob)) return 1;",
        '  for (int i = 0; i < 10; i++) printf("%.9g\\n", ya[i]);',
        '  for (int i = 0; i < 256; i++) printf("%.9g\\n", yb[i]);',
        "  return 0;",
        "}",
    ]
    objs = []
    for prefix, module in models.items():
        result = build(module, prefix=prefix)
        objs.append(str(write_artifact(result, tmp_path / f"{prefix}.o", "obj")))
        write_artifact(result, tmp_path / f"{prefix}.h", "header")
    (tmp_path / "main.c").write_text("\n".join(main) + "\n")
    exe = tmp_path / "both"
    subprocess.run(
        [
            "cc",
            "-Wall",
            "-Werror",
            f"-I{tmp_path}",
            str(tmp_path / "main.c"),
            *objs,
            "-o",
            str(exe),
            "-lm",
        ],
        check=True,
    )
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    got = np.array(out.split(), dtype=np.float32)
    xa = (np.arange(768) % 7 - 3).astype(np.float32).reshape(1, 3, 16, 16)
    xb = (np.arange(256) % 5 - 2).astype(np.float32).reshape(1, 4, 8, 8)
    want = np.concatenate(
        [interpret(models["cnn"], [xa])[0].ravel(), interpret(models["res"], [xb])[0].ravel()]
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert os.path.getsize(exe) > 0
