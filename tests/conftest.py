"""Shared test set-up: offline, single-threaded torch, deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


# --- datasets engineer: a scratch folder for trees of many placeholder files --------------
import contextlib as _contextlib  # noqa: E402
import shutil as _shutil  # noqa: E402
import tempfile as _tempfile  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

import pytest as _pytest  # noqa: E402


@_pytest.fixture(scope="module")
def many_files_dir(tmp_path_factory):
    """A module-scoped scratch folder on tmpfs (/dev/shm) when available, else under pytest's tmp.

    Dataset-root tests create thousands of empty placeholder images (FreiHAND's real
    130,240-name layout); on a busy ext4 disk that costs 40 us - 1 ms per file, on tmpfs ~8 us.
    """
    shm = _Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = _Path(_tempfile.mkdtemp(prefix="hcdg-test-", dir=shm))
        yield path
        with _contextlib.suppress(OSError):
            _shutil.rmtree(path)
    else:
        yield tmp_path_factory.mktemp("many_files")
