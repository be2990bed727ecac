"""The pass registry: names, file layout, docstrings, options (DESIGN.md 'Passes')."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest
from xdsl.passes import ModulePass

from nnc.passes import PASSES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PASSES))
def test_registry_key_is_the_pass_name(name):
    assert PASSES[name].name == name


@pytest.mark.parametrize("name", sorted(PASSES))
def test_pass_lives_in_its_own_file_named_after_it(name):
    cls = PASSES[name]
    module = importlib.import_module(cls.__module__)
    assert Path(module.__file__).stem == name.replace("-", "_")
    assert issubclass(cls, ModulePass) and dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen


@pytest.mark.parametrize("name", sorted(PASSES))
def test_docstring_states_before_after_and_numeric_contract(name):
    doc = inspect.getmodule(PASSES[name]).__doc__ or ""
    for section in ("Before", "After", "Preconditions", "Numeric contract"):
        assert section in doc, f"{name}: module docstring lacks {section!r}"


@pytest.mark.parametrize("name", sorted(PASSES))
def test_every_option_has_a_default_and_a_docstring(name):
    cls = PASSES[name]
    source = inspect.getsource(cls)
    for field in dataclasses.fields(cls):
        assert field.default is not dataclasses.MISSING, f"{name}: option {field.name}"
        assert f"{field.name}: " in source and '"""' in source.split(f"{field.name}: ")[1][:200]
    cls()  # constructible with defaults


@pytest.mark.parametrize("name", sorted(PASSES))
def test_every_pass_has_filecheck_and_property_tests(name):
    stem = name.replace("-", "_")
    assert (ROOT / "tests" / "filecheck" / f"{stem}.mlir").exists()
    assert (ROOT / "tests" / "passes" / f"test_{stem}.py").exists()


def test_writing_a_pass_doc_quotes_real_code():
    """Code blocks in docs/writing_a_pass.md that name a file must appear in it verbatim."""
    doc = (ROOT / "docs" / "writing_a_pass.md").read_text()
    blocks = re.findall(r"```\w*\n(.*?)```", doc, flags=re.S)
    quoted = [b for b in blocks if re.match(r"(#|//) file: ", b)]
    assert len(quoted) >= 6
    for block in quoted:
        first, body = block.split("\n", 1)
        source = (ROOT / first.split("file: ", 1)[1].strip()).read_text()
        assert body in source, f"docs/writing_a_pass.md quotes {first} out of date:\n{body}"
