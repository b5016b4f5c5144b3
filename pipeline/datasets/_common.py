"""Helpers shared by the dataset readers: image decoding, projection, file checks.

Everything here raises `HcdgError` with one line naming the file and what was
expected, so a reader never fails with a bare traceback on bad input.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError

#: Sidecar file a synthetic-data generator may put in a dataset root (docs/data.md).
SYNTH_SIDECAR = "hcdg_synth.json"


def one_line(text: object) -> str:
    """`text` with all whitespace runs (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def decode_image(path: Path) -> np.ndarray:
    """The image at `path` as (H, W, 3) uint8 RGB; an unreadable/corrupt file raises `HcdgError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now, so truncated files fail here and not later
                rgb = img.convert("RGB")
        return np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise HcdgError(f"{path}: image file not found") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise HcdgError(f"{path}: cannot decode image ({one_line(exc) or type(exc).__name__})") from None


def with_image(sample: Sample) -> Sample:
    """`sample` with its image decoded (uint8 RGB)."""
    return dataclasses.replace(sample, image=decode_image(sample.image_path))


def decode_label_image(path: Path) -> np.ndarray:
    """A single-channel label image (e.g. RHD's mask) as (H, W) integers, without palette mapping."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img)
    except FileNotFoundError:
        raise HcdgError(f"{path}: mask file not found") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise HcdgError(f"{path}: cannot decode mask image ({one_line(exc) or type(exc).__name__})") from None
    if arr.ndim == 3:  # a label map saved as RGB(A): all channels carry the label
        arr = arr[..., 0]
    return arr


def read_json(path: Path, what: str) -> Any:
    """Parse the JSON file at `path`; `what` says what it should hold (for the error message)."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise HcdgError(f"{path}: missing {what}") from None
    except (OSError, ValueError) as exc:
        raise HcdgError(f"{path}: cannot read {what} ({one_line(exc)})") from None


def read_json_array(path: Path, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """`read_json` + `as_array`, with the garbage collector paused: a 45 MB list of lists of
    numbers (FreiHAND's training_xyz.json) creates millions of objects, none cyclic, and the
    collector's passes over them were 37 % of the parse (docs/benchmarks.md, start-up)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return as_array(read_json(path, what), shape, str(path))
    finally:
        if enabled:
            gc.enable()


def as_array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """`value` as a float64 array of exactly `shape` (e.g. (N, 21, 3)); `where` names it in errors.

    A -1 in `shape` matches any length.
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise HcdgError(f"{where}: expected numbers of shape {_fmt_shape(shape)} ({one_line(exc)})") from None
    if arr.ndim != len(shape) or any(s != -1 and a != s for a, s in zip(arr.shape, shape)):
        raise HcdgError(f"{where}: expected shape {_fmt_shape(shape)}, got {arr.shape}")
    return arr


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join("N" if s == -1 else str(s) for s in shape) + ")"


def require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise HcdgError(f"{path}: missing folder ({what})")


def require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise HcdgError(f"{path}: missing {what}")


def list_names(folder: Path, what: str) -> set[str]:
    """The file names in `folder` (one `os.listdir`); a missing folder raises `HcdgError`."""
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        raise HcdgError(f"{folder}: missing folder ({what})") from None
    except OSError as exc:
        raise HcdgError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None


def check_names(folder: Path, present: set[str], expected: Iterable[str], what: str) -> None:
    """Every name in `expected` must be in `present` (the listing of `folder`)."""
    expected = list(expected)
    missing = [n for n in expected if n not in present]
    if missing:
        raise HcdgError(
            f"{folder}: {len(missing)} of {len(expected)} expected {what} missing "
            f"(first: {missing[0]})"
        )


def file_sizes(root: Path, rel_paths: Iterable[str]) -> list[tuple[str, int]]:
    """(relative path, size in bytes) for each path under `root`, in the given order."""
    base = os.fspath(root)
    out = []
    for rel in rel_paths:
        try:
            out.append((rel, os.stat(os.path.join(base, rel)).st_size))
        except OSError as exc:
            raise HcdgError(f"{root / rel}: cannot stat ({exc.strerror or exc})") from None
    return out


def sidecar_rels(root: Path) -> list[str]:
    """`[SYNTH_SIDECAR]` when `root` has one (readers read it, so manifests list it), else `[]`."""
    return [SYNTH_SIDECAR] if (root / SYNTH_SIDECAR).is_file() else []


def read_synth_styles(root: Path) -> dict[str, Any]:
    """Per-image style info from a synthetic dataset's `hcdg_synth.json`, keyed by image path.

    Keys are image paths relative to `root` in POSIX form (e.g. "training/rgb/00000003.jpg").
    The sidecar may hold them as ``{"images": {path: {"style": ...}}}`` or
    ``{"styles": {path: style}}``. No sidecar (real data) gives an empty dict.
    """
    path = root / SYNTH_SIDECAR
    if not path.is_file():
        return {}
    data = read_json(path, "synthetic-data sidecar")
    if not isinstance(data, dict):
        raise HcdgError(f"{path}: expected a JSON object")
    styles: dict[str, Any] = {}
    images = data.get("images")
    if isinstance(images, dict):
        for rel, info in images.items():
            if isinstance(info, dict) and "style" in info:
                styles[str(rel)] = info["style"]
    plain = data.get("styles")
    if isinstance(plain, dict):
        styles.update({str(k): v for k, v in plain.items()})
    return styles


# --- finite, non-degenerate annotations ---------------------------------------------------
# `label` names an entry in messages ("pose", "frame", "id"); `names` (optional) gives each
# entry's name (e.g. RHD's ids) instead of its position.


def _first_bad(bad: np.ndarray, label: str, names: Sequence[Any] | None) -> str:
    idx = np.flatnonzero(bad)
    first = int(idx[0])
    return f"{label} {names[first] if names is not None else first}" + (
        f" (and {idx.size - 1} more)" if idx.size > 1 else "")


def check_finite(arr: np.ndarray, where: str, what: str, label: str = "entry",
                 names: Sequence[Any] | None = None) -> None:
    """Refuse NaN/inf anywhere in `arr` (first axis: entries), naming the first bad entry."""
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    if bad.any():
        raise HcdgError(f"{where}: {what} of {_first_bad(bad, label, names)} holds NaN or inf "
                        "(expected finite numbers)")


def check_intrinsics(K: np.ndarray, where: str, label: str = "entry", names: Sequence[Any] | None = None) -> None:
    """(N, 3, 3) pinhole intrinsics: finite, focal lengths > 0, last row (0, 0, 1)."""
    check_finite(K, where, "K", label, names)
    bad = ~((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0) & np.isclose(K[:, 2], [0.0, 0.0, 1.0]).all(axis=1))
    if bad.any():
        raise HcdgError(f"{where}: K of {_first_bad(bad, label, names)} is degenerate (expected focal lengths > 0 "
                        "and a last row 0 0 1)")


def check_joints(xyz: np.ndarray, where: str, label: str = "entry", names: Sequence[Any] | None = None, *,
                 in_front: bool = True) -> None:
    """(N, J, 3) camera-frame joints: finite, not all at one point, (with `in_front`) every z > 0."""
    check_finite(xyz, where, "xyz", label, names)
    bad = np.ptp(xyz, axis=1).max(axis=1) <= 0
    if bad.any():
        raise HcdgError(f"{where}: xyz of {_first_bad(bad, label, names)} is degenerate (all joints at one point)")
    if in_front:
        bad = (xyz[..., 2] <= 0).any(axis=1)
        if bad.any():
            raise HcdgError(f"{where}: xyz of {_first_bad(bad, label, names)} has joints at or behind the camera "
                            "(z <= 0)")
