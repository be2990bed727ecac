"""Trained digits models shared by the compression tests (trained once per process)."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from nnc.testing import digits  # noqa: E402


@pytest.fixture(scope="session")
def split() -> digits.Split:
    return digits.load_digits_split()


@pytest.fixture(scope="session")
def mlp() -> digits.TrainedModel:
    return digits.train_mlp()


@pytest.fixture(scope="session")
def cnn() -> digits.TrainedModel:
    return digits.train_cnn()
