"""Atomic writes: a temp file in the same folder, fsync, then rename.

Readers never see half-written files; a killed process leaves either the old
file or the new one (plus, at worst, a `.tmp-*` file that later writes ignore).
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
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


def read_json_object(path: str | os.PathLike[str], expected: str) -> dict[str, Any]:
    """The JSON object in `path`; a one-line `HcdgError` when it is not valid JSON or not an object.

    `expected` names the keys a reader looks for, for the message (e.g. "stage, config, seed, ...").
    """
    from hcdg.pipeline.errors import HcdgError

    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HcdgError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise HcdgError(f"{path}: expected a JSON object ({expected})")
    return obj
