"""Atomic writes: a temp file in the same folder, fsync, then rename.

Readers never see half-written files; a killed process leaves either the old
file or the new one (plus, at worst, a `.tmp-*` file: the next run of the same
writer removes it, `store.runs.clean_stale_temps`). Files and folders get the
modes the process's umask gives (0644 / 0755 with the usual 022), not the 0600 /
0700 of `tempfile`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # not thread-safe, hence only the fallback
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a new file under the umask (0644 with the usual 022): what `open()` would give."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Mode of a new folder under the umask (0755 with 022): what `mkdir` would give."""
    return 0o777 & ~umask()


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an OSError that names no file (e.g. ENOSPC from a write) as one naming `path`."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`, else delete it.

    The file gets the mode a plain `open()` would (the umask's), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.fchmod(fd, file_mode())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with naming(path):
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """Strict JSON (RFC 8259): NaN/inf are refused (ValueError), never written as bare `NaN`."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def finite_or_none(x: float | None) -> float | None:
    """`x` as a float, or None (JSON null) where it is NaN/inf: a legitimate "no value" (e.g. no validation set)."""
    return float(x) if x is not None and math.isfinite(x) else None


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as strict JSON (see `json_text`): a NaN that means "no value" must be None first."""
    atomic_write_text(path, json_text(obj))


def _no_constant(name: str) -> float:
    raise ValueError(f"holds a bare {name}, which is not JSON (hcdg writes null for no value)")


def loads_strict(text: str) -> Any:
    """`json.loads` that refuses NaN / Infinity / -Infinity (ValueError), the inverse of `json_text`."""
    return json.loads(text, parse_constant=_no_constant)


def read_json_object(path: str | os.PathLike[str], expected: str) -> dict[str, Any]:
    """The JSON object in `path`; a one-line `HcdgError` when it is not valid JSON or not an object.

    `expected` names the keys a reader looks for, for the message (e.g. "stage, config, seed, ...").
    """
    from hcdg.pipeline.errors import HcdgError

    path = Path(path)
    try:
        obj = loads_strict(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise HcdgError(f"{path}: not UTF-8 text (byte {exc.start}); expected a JSON object ({expected})") from None
    except json.JSONDecodeError as exc:
        raise HcdgError(f"{path}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:  # NaN / Infinity: not JSON (RFC 8259), never written by hcdg
        raise HcdgError(f"{path}: {exc}") from None
    if not isinstance(obj, dict):
        raise HcdgError(f"{path}: expected a JSON object ({expected})")
    return obj
