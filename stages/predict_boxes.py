"""The paper authors' released test-box files, read for `hcdg predict` as they were made.

Their files (`realdata/seed-bboxes/`, docs/sources.md#authors-test-code) hold one [x, y, w, h] row per test
frame, not one per input image:

* ``STB_bbox.npy`` (3000, 4): STB test = B1Counting then B1Random, 1,500 frames each, in
  frame order, drawn on the *mirrored* BB_left images (docs/geometry.md §3: their code
  mirrors every STB frame; all STB hands are left hands). Row = 1500 x sequence + frame.
* ``Rhp_bbox.npy`` (2725, 4): RHD evaluation images in id order without the three their test
  code skips (`stages.eval.RHD_AUTHORS_DROPPED`), in the frame the crop is cut in (eval's
  seed boxes): the mirrored image for left hands, the image for right hands.

Inputs are matched to rows by file name (``.../B1Counting/BB_left_17.png``, ``00111.png``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.errors import HcdgError

STB_SEQUENCES = ("B1Counting", "B1Random")  # the STB test split, in the authors' row order
STB_FRAMES = 1500  # frames per STB sequence
N_STB, N_RHD = 3000, 2725  # rows of their STB_bbox.npy and Rhp_bbox.npy
_STB_NAME = re.compile(r"^BB_left_(\d+)\.png$")
_RHD_NAME = re.compile(r"^(\d{5})\.png$")


def authors_kind(arr: np.ndarray, n_inputs: int) -> str | None:
    """"stb" / "rhd" when `arr` has the shape of the authors' file (and not one row per input)."""
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == n_inputs:
        return None
    return {N_STB: "stb", N_RHD: "rhd"}.get(arr.shape[0])


def _stb_row(path: Path | None, name: str) -> int | None:
    m = _STB_NAME.match(name)
    seq = path.parent.name if path is not None else ""
    if not m or seq not in STB_SEQUENCES or int(m.group(1)) >= STB_FRAMES:
        return None
    return STB_SEQUENCES.index(seq) * STB_FRAMES + int(m.group(1))


def _rhd_row(name: str) -> int | None:
    from hcdg.stages.eval import RHD_AUTHORS_DROPPED

    m = _RHD_NAME.match(name)
    if not m or m.group(1) in RHD_AUTHORS_DROPPED:
        return None
    i = int(m.group(1))
    return i - sum(int(d) < i for d in RHD_AUTHORS_DROPPED)


def read_authors_boxes(arr: np.ndarray, kind: str, where: str, names: list[str],
                       paths: list[Path | None]) -> dict[str, dict[str, Any]]:
    """{name: {"box", "side", "K", "frame"}} for inputs named as the authors' test frames."""
    from hcdg.pipeline.predict import check_box

    out: dict[str, dict[str, Any]] = {}
    for name, path in zip(names, paths):
        row = _stb_row(path, name) if kind == "stb" else _rhd_row(name)
        if row is None or row >= len(arr):
            expect = ("B1Counting/BB_left_N.png or B1Random/BB_left_N.png, N < 1500" if kind == "stb"
                      else "NNNNN.png, an RHD evaluation image id (not 00162, 00359, 01488)")
            raise HcdgError(f"{where}: the authors' {kind.upper()} box file has one row per test frame; "
                            f"{name!r} is not named as one (expected {expect})")
        box = check_box(arr[row], f"{where} row {row}")
        if kind == "stb":
            out[name] = {"box": box, "side": "left", "K": None, "frame": "mirrored"}
        else:
            out[name] = {"box": box, "side": None, "K": None, "frame": "hand"}
    return out
