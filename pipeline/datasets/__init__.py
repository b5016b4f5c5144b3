"""Readers of the real on-disk dataset formats (FreiHAND, RHD, STB).

`open_dataset(name, root, split, **options)` validates the root and returns a
reader implementing `base.HandDataset`. Every reader yields `base.Sample`s:
21 joints in FreiHAND order, metres, camera frame as stored (left hands are not
mirrored here), with the side and root kind recorded. See docs/data.md.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from hcdg.pipeline.datasets.base import HandDataset, Sample
from hcdg.pipeline.datasets.freihand import FreiHandDataset
from hcdg.pipeline.datasets.rhd import RhdDataset
from hcdg.pipeline.datasets.stb import StbDataset
from hcdg.pipeline.errors import HcdgError

__all__ = ["DATASETS", "DEFAULT_SPLITS", "SPLITS", "HandDataset", "Sample", "open_dataset", "split_names"]

#: Reader class of each dataset name.
DATASETS: dict[str, type] = {"freihand": FreiHandDataset, "rhd": RhdDataset, "stb": StbDataset}

#: Fixed split names. STB also accepts any sequence name with a label file under `labels/`.
SPLITS: dict[str, tuple[str, ...]] = {
    "freihand": ("training", "evaluation"),
    "rhd": ("training", "evaluation"),
    "stb": ("test",),
}

#: Default split per dataset: FreiHAND trains (the source domain, paper §4.1); RHD
#: and STB are evaluated on their test splits (2,728 and 3,000 images, paper §4.1).
DEFAULT_SPLITS: dict[str, str] = {"freihand": "training", "rhd": "evaluation", "stb": "test"}


def split_names(name: str) -> tuple[str, ...]:
    """The fixed split names of dataset `name` (STB sequences come on top, see `SPLITS`)."""
    _check_name(name)
    return SPLITS[name]


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise HcdgError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")


def open_dataset(name: str, root: str | Path, split: str | None = None, **options: Any) -> HandDataset:
    """Open and validate dataset `name` at `root`.

    Args:
        name: "freihand", "rhd" or "stb".
        root: the dataset folder (FreiHAND root, `RHD_published_v2`, STB root), or a COCO-style
            hand keypoint JSON file (`datasets.coco`: mmpose / I2L-MeshNet layouts).
        split: a split name (default `DEFAULT_SPLITS[name]`).
        **options: reader options: rhd `hand` ("auto"|"left"|"right");
            stb `cameras` (tuple of "BB_left", "BB_right", "SK"; default ("BB_left",)).

    Raises:
        HcdgError: unknown name/option, or a root that does not hold the expected files.
    """
    _check_name(name)
    cls = DATASETS[name]
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("root", "split")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise HcdgError(
            f"{name}: unknown option {unknown[0]!r} (known: {', '.join(allowed) or 'none'})"
        )
    root = Path(root)
    if not root.exists():
        raise HcdgError(f"{root}: dataset root does not exist ({name})")
    from hcdg.pipeline.datasets.coco import CocoHandDataset, is_coco_file

    if is_coco_file(root):  # a COCO-style hand keypoint JSON (mmpose / I2L-MeshNet layouts)
        if options:
            raise HcdgError(f"{root}: a COCO-style JSON takes no reader options (got {', '.join(sorted(options))})")
        return CocoHandDataset(root, split or DEFAULT_SPLITS[name], dataset=name)
    return cls(root, split or DEFAULT_SPLITS[name], **options)
