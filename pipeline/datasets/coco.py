"""COCO-style hand keypoint JSON (the annotation files of mmpose and many hand repositories).

`open_dataset(name, "path/to/annotations.json")` reads one. Supported layouts:

* **mmpose hand datasets** (OneHand10K, FreiHAND, RHD, CMU panoptic, COCO-WholeBody hand
  conversions): ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations``
  (``image_id``, ``bbox`` [x, y, w, h] px, ``keypoints`` 21 x (u, v, visibility) as a flat list
  of 63 numbers or as 21 triples), one ``categories`` entry whose ``keypoints`` names are
  mmpose's hand order (wrist, thumb1..4, forefinger1..4, middle_finger1..4, ring_finger1..4,
  pinky_finger1..4 = FreiHAND's joint order, checked).
* **I2L-MeshNet / InterHand2.6M-style 3D extras**, used when present: per annotation
  ``joint_cam`` (21 x 3 camera-frame **millimetres**) and ``hand_type`` ("left"/"right"); per
  image ``cam_param`` {``focal``: [fx, fy], ``princpt``: [cx, cy]} pixels.

Images are found beside the JSON file (``file_name`` relative to its folder, or to
``images/``). Without ``joint_cam`` + ``cam_param`` a sample has 2D only: its ``xyz`` and
``K`` are NaN (`has_3d` False) and stages that need 3D ground truth (eval) refuse it.
Joint 0 is the wrist; the side is ``hand_type`` or right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.datasets import _common as c
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError

#: mmpose's hand keypoint names (its hand dataset configs), in FreiHAND's joint order.
MMPOSE_HAND_NAMES = ("wrist", *(f"{f}{i}" for f in ("thumb", "forefinger", "middle_finger", "ring_finger",
                                                    "pinky_finger") for i in range(1, 5)))


def is_coco_file(root: str | Path) -> bool:
    """True for a path this reader takes (a .json file)."""
    p = Path(root)
    return p.suffix.lower() == ".json" and p.is_file()


class CocoHandDataset:
    """Reader of a COCO-style hand keypoint JSON (see the module docstring)."""

    def __init__(self, root: str | Path, split: str = "evaluation", dataset: str = "coco") -> None:
        self.json_path = Path(root)
        self.root = self.json_path.parent
        self.dataset, self.split = dataset, split
        data = c.read_json(self.json_path, "COCO-style hand annotations (images, annotations, categories)")
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise HcdgError(f"{self.json_path}: expected a COCO-style object with 'images' and 'annotations' lists")
        cats = data.get("categories") or []
        names = tuple(cats[0].get("keypoints", ())) if cats and isinstance(cats[0], dict) else ()
        if names and names != MMPOSE_HAND_NAMES:
            raise HcdgError(f"{self.json_path}: keypoint names {list(names)[:3]}... are not mmpose's 21 hand "
                            f"joints ({', '.join(MMPOSE_HAND_NAMES[:3])}, ...); other layouts are not supported")
        images = {im.get("id"): im for im in data["images"] if isinstance(im, dict)}
        self._rows: list[tuple[dict, dict]] = []
        for k, ann in enumerate(data["annotations"]):
            where = f"{self.json_path} annotations[{k}]"
            if not isinstance(ann, dict) or ann.get("image_id") not in images:
                raise HcdgError(f"{where}: expected an object whose image_id is one of the images")
            self._rows.append((ann, images[ann["image_id"]]))
        if not self._rows:
            raise HcdgError(f"{self.json_path}: no annotations")
        self.has_3d = all("joint_cam" in a and "cam_param" in im for a, im in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def sample_id(self, index: int) -> str:
        ann, im = self._rows[index]
        return f"{Path(str(im.get('file_name', ''))).stem}-{ann.get('id', index)}"

    def image_path(self, index: int) -> Path:
        name = str(self._rows[index][1].get("file_name", ""))
        direct = self.root / name
        return direct if direct.is_file() or not (self.root / "images" / name).is_file() else self.root / "images" / name

    def bbox(self, index: int) -> np.ndarray:
        """(4,) [x, y, w, h] pixels of annotation `index`."""
        ann = self._rows[index][0]
        return c.as_array(ann.get("bbox"), (4,), f"{self.json_path} annotation {ann.get('id')} bbox")

    def annotation(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.json_path}: index {index} out of range 0..{len(self) - 1}")
        ann, im = self._rows[index]
        where = f"{self.json_path} annotation {ann.get('id', index)}"
        kp = np.asarray(ann.get("keypoints"), dtype=np.float64)
        if kp.size != 63:
            raise HcdgError(f"{where}: expected 21 keypoints (u, v, visibility), got {kp.size} numbers")
        kp = kp.reshape(21, 3)
        uv, visible = kp[:, :2], kp[:, 2] > 0
        xyz, K = np.full((21, 3), np.nan), np.full((3, 3), np.nan)
        if "joint_cam" in ann and "cam_param" in im:
            xyz = c.as_array(ann["joint_cam"], (21, 3), f"{where} joint_cam") / 1000.0  # mm -> m
            cam = im["cam_param"]
            f, p = (c.as_array(cam.get(k), (2,), f"{where} cam_param.{k}") for k in ("focal", "princpt"))
            K = np.array([[f[0], 0.0, p[0]], [0.0, f[1], p[1]], [0.0, 0.0, 1.0]])
        side = ann.get("hand_type", "right")
        if side not in ("left", "right"):
            raise HcdgError(f"{where}: hand_type {side!r} (expected left or right)")
        return Sample(
            dataset=self.dataset, split=self.split, index=int(index), sample_id=self.sample_id(index),
            image_path=self.image_path(index), K=K, xyz=xyz, uv=uv, visible=visible, side=side, root="wrist",
            extra={"bbox": ann.get("bbox"), "annotation_id": ann.get("id"), "format": "coco-json"},
        )  # fmt: skip

    def __getitem__(self, index: int) -> Sample:
        return c.with_image(self.annotation(index))

    def manifest(self) -> list[tuple[str, int]]:
        rels = [self.json_path.name] + sorted({str(self.image_path(i).relative_to(self.root)) for i in range(len(self))})
        return c.file_sizes(self.root, rels)

    @property
    def note(self) -> str:
        return "" if self.has_3d else "COCO-style JSON with 2D keypoints only (no joint_cam + cam_param): xyz and K are NaN"
