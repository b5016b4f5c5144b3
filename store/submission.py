"""The FreiHAND toolbox's prediction file (`pred.json`, what its eval.py and the Codalab
competition read): ``[xyz_list, verts_list]``.

* ``xyz_list``: one entry per evaluation sample, in the order of the evaluation split
  (3,960 for FreiHAND v2's evaluation set), each 21 x [x, y, z] in **metres**, camera frame,
  FreiHAND's joint order (hcdg's own order: no reordering).
* ``verts_list``: the toolbox also scores a 778-vertex MANO mesh. hcdg predicts joints only,
  so each entry repeats the sample's 21 predicted joints cyclically to 778 rows: the toolbox
  reads the file and its alignment (which divides by the points' spread) runs, but its mesh
  scores are meaningless; use the keypoint scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hcdg.pipeline.errors import HcdgError
from hcdg.store.atomic import atomic_write_text

#: Samples of FreiHAND v2's evaluation split (the toolbox's expected count).
FREIHAND_EVAL_SAMPLES = 3960
#: Vertices of the MANO mesh the toolbox expects per sample.
MANO_VERTS = 778


def check_path(path: str | Path) -> Path:
    """The submission path, checked before any work: a file in an existing folder."""
    p = Path(path)
    if p.is_dir():
        raise HcdgError(f"--write-submission {path}: is a folder (expected a file name, e.g. pred.json)")
    if not p.parent.is_dir():
        raise HcdgError(f"--write-submission {path}: folder {p.parent} does not exist")
    return p


def verts_stand_in(xyz_m: np.ndarray) -> np.ndarray:
    """(N, 778, 3): each sample's 21 joints repeated cyclically (see the module docstring)."""
    idx = np.arange(MANO_VERTS) % xyz_m.shape[1]
    return xyz_m[:, idx]


def write_freihand_submission(path: str | Path, xyz_m: np.ndarray) -> Path:
    """Write ``[xyz_list, verts_list]`` for (N, 21, 3) camera-frame metres; atomic."""
    xyz = np.asarray(xyz_m, dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (21, 3) or not np.isfinite(xyz).all():
        raise HcdgError(f"--write-submission {path}: predictions must be finite (N, 21, 3), got {xyz.shape}")
    doc = [np.round(xyz, 6).tolist(), np.round(verts_stand_in(xyz), 6).tolist()]
    p = check_path(path)
    atomic_write_text(p, json.dumps(doc, separators=(",", ":")))
    return p
