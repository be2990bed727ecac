"""Fixtures of the quantization tests: the trained digits CNN (session-wide, ~5-10 s)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """Trained once per test session: xdist workers share the parameters through a file
    in the session's base temp directory (a lock makes the second worker wait)."""
    import fcntl
    import hashlib

    from digits import make_digits

    source = (Path(__file__).parent / "digits.py").read_bytes()
    key = hashlib.blake2b(source, digest_size=8).hexdigest()
    shared = tmp_path_factory.getbasetemp().parent
    cache = shared / f"digits-{key}.npz"
    with open(shared / f"digits-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return make_digits(cache)
