"""The one sample record every reader yields, and the reader interface.

Every reader (FreiHAND, RHD, STB, in their real on-disk formats) validates its
root directory when opened and then yields `Sample`s in a fixed order. Joints
are always 21 in FreiHAND order, metres, in the camera frame *as stored*
(left hands are not mirrored here: mirroring happens in the shared
training/evaluation transform, `hcdg.pipeline.hands`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Side = Literal["left", "right"]
RootKind = Literal["wrist", "palm"]


@dataclass(frozen=True)
class Sample:
    """One annotated hand image.

    Attributes:
        dataset: "freihand" | "rhd" | "stb".
        split: the reader's split name (e.g. "training", "evaluation", "test", "B1Counting").
        index: position in the reader's order (0..len-1).
        sample_id: stable string id, unique within the split (e.g. "00000123",
            "B1Counting/BB_left_5"); feature stores key rows by it.
        image_path: the image file.
        K: (3, 3) float64 camera intrinsics, pixels.
        xyz: (21, 3) float64 joints, metres, FreiHAND order, camera frame as stored.
        uv: (21, 2) float64 pixel coordinates of `xyz` projected with `K`.
        visible: (21,) bool, joint visible in the image (all True where unknown).
        side: hand side before any mirroring.
        root: what joint 0 is: the wrist, or STB's palm centre.
        image: (H, W, 3) uint8 RGB, or None when only the annotation was asked for.
        extra: reader-specific facts (FreiHAND version 0..3, STB camera, synthetic style, ...).
    """

    dataset: str
    split: str
    index: int
    sample_id: str
    image_path: Path
    K: np.ndarray
    xyz: np.ndarray
    uv: np.ndarray
    visible: np.ndarray
    side: Side
    root: RootKind
    image: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class HandDataset(Protocol):
    """What every reader provides. Opening one validates the root up front."""

    dataset: str
    split: str
    root: Path

    def __len__(self) -> int: ...

    def sample_id(self, index: int) -> str: ...

    def image_path(self, index: int) -> Path: ...

    def annotation(self, index: int) -> Sample:
        """The sample without decoding its image (`image` is None)."""
        ...

    def __getitem__(self, index: int) -> Sample:
        """The sample with its image decoded (uint8 RGB)."""
        ...

    def manifest(self) -> list[tuple[str, int]]:
        """(path relative to root, size in bytes) of every file the split reads, in a fixed order."""
        ...
