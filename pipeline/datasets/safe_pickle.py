"""A restricted unpickler for dataset annotation files (RHD's `anno_*.pickle`).

Unpickling runs code: a pickle can name any importable callable (``os.system``)
and have it called while loading. `load_pickle` admits only plain data -- dicts,
lists, tuples, numbers, strings, bytes, None, bool (and sets, where the protocol
has an opcode for them) -- and numpy arrays and scalars of non-object dtypes. Everything else is refused *before* it is
resolved, with an `HcdgError` naming the file and the refused global.

The globals numpy pickles need (checked against numpy 1.x pickles written by
Python 2, as the real RHD files are, and against numpy 2.x pickles at
protocols 2-5):

* ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``
  (arrays), ``numpy.ndarray``, ``numpy.dtype``;
* ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar`` (numpy scalars);
* ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer``
  (arrays at protocol 5);
* ``_codecs.encode`` (how Python 3 writes ``bytes`` at protocol 2; admitted for
  the latin-1 codec only).

Dtypes that can hold Python objects (``dtype('O')``, or structured dtypes with
object fields) are refused, since their contents would be arbitrary objects.
Python 2 pickles need ``encoding="latin1"`` (the default here) so that the
raw array bytes, stored as Python 2 ``str``, come back byte for byte.
"""

from __future__ import annotations

import codecs
import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.errors import HcdgError

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_pickle", "loads"]


class UnsafePickleError(HcdgError):
    """A pickle asked for a global (callable/class) that is not on the allow-list."""


def _numpy_core_attr(submodule: str, name: str) -> Any:
    """`numpy._core.<submodule>.<name>` (numpy >= 2), else `numpy.core.<submodule>.<name>`."""
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"numpy has no {submodule}.{name}")  # pragma: no cover - numpy layout changed


def _safe_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refused object dtype {dtype!r} (it could hold arbitrary objects)")
    return dtype


def _safe_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 writes `bytes` at protocol 2 as `_codecs.encode(text, "latin1")`.
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(obj, "latin1", errors)


def _resolvers() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_core_attr("multiarray", "_reconstruct")
    scalar = _numpy_core_attr("multiarray", "scalar")
    frombuffer = _numpy_core_attr("numeric", "_frombuffer")
    out: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _safe_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        out[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        out[(f"{package}.multiarray", "scalar")] = scalar
        out[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return out


#: The (module, name) pairs a pickle may reference; nothing else is ever imported.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(_resolvers())


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, *, encoding: str) -> None:
        super().__init__(file, encoding=encoding, fix_imports=False)
        self._resolved = _resolvers()

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle hook
        try:
            return self._resolved[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle hook
        raise pickle.UnpicklingError("refused persistent id")


def loads(data: bytes, *, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """Unpickle `data` with the allow-list; `source` names the data in error messages."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(
            f"{source}: refused to unpickle global {exc} (only plain data and numpy arrays are "
            "allowed; this file may be malicious or not a dataset annotation file)"
        ) from None
    except HcdgError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise HcdgError(f"{source}: not a readable annotation pickle ({msg})") from None


def load_pickle(path: str | os.PathLike[str], *, encoding: str = "latin1") -> Any:
    """Load the pickle file at `path` with the allow-list (see the module docstring).

    Raises `HcdgError` naming `path` when the file is missing, malformed, or asks for
    anything but plain data and numpy arrays; refused globals are never imported or called.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HcdgError(f"{path}: cannot read annotation pickle ({exc.strerror or exc})") from None
    return loads(data, source=str(path), encoding=encoding)
