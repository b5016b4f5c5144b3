"""STB reader (a target domain: real, 640x480 PNG, left hands; docs/sources.md#stb).

On-disk layout (the real one):

    labels/{seq}_BB.mat         'handPara' (3, 21, n_frames) mm, left Bumblebee camera frame
    labels/{seq}_SK.mat         'handPara' (3, 21, n_frames) mm, RealSense depth camera frame
    {seq}/BB_left_%d.png        Bumblebee stereo pair
    {seq}/BB_right_%d.png
    {seq}/SK_color_%d.png       RealSense colour camera
    camera_params.json          optional; the intrinsics/extrinsics below (STB README values)

Image folders may also sit under `images/{seq}/` (as some copies of STB are laid out).

The `test` split is B1Counting + B1Random (hand3d's split); any sequence name with a
label file under `labels/` selects that one sequence. The `cameras` option picks
the views ("BB_left" by default, also "BB_right", "SK"); samples are ordered by
sequence, then camera, then frame, so `cameras=("BB_left",)` on `test` matches the
order of the paper authors' crop boxes (`seed-bboxes/STB_bbox.npy`, 3,000 rows).

Joints are converted to FreiHAND order and metres, in the frame of the camera that
took the image: BB_right points are the BB_left points shifted by the baseline
(p_right = p_left - [baseline, 0, 0]); SK points are moved from the depth camera to
the colour camera with the README's rotation/translation (p_color = R^T (p_depth - t),
R = Rodrigues(rot), t in mm; the convention of common STB loaders -- not checked
against real SK images here). Joint 0 stays STB's PALM centre (`root="palm"`);
`hands.stb_palm_to_wrist` converts it when a wrist is wanted. Hands are left hands
and are not mirrored here. Frame counts come from the .mat files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hcdg.pipeline import joints
from hcdg.pipeline.camera import project
from hcdg.pipeline.datasets import _common as c
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError

#: hand3d's STB test split (docs/sources.md#stb; paper §4.1: 3,000 test frames).
TEST_SEQUENCES = ("B1Counting", "B1Random")
CAMERAS = ("BB_left", "BB_right", "SK")
DEFAULT_CAMERAS = ("BB_left",)
#: camera -> (label file suffix, image file prefix)
_CAMERA_FILES = {"BB_left": ("BB", "BB_left"), "BB_right": ("BB", "BB_right"), "SK": ("SK", "SK_color")}
CAMERA_PARAMS_FILE = "camera_params.json"

#: STB README values (identical to `camera_params.json` of the real data).
DEFAULT_CAMERA_PARAMS: dict = {
    "BB2Stereo": {"baseline": 120.054, "fx": 822.79041, "fy": 822.79041, "tx": 318.47345, "ty": 250.31296},
    "IRSF200": {
        "color": {"fx": 607.92271, "fy": 607.88192, "tx": 314.78337, "ty": 236.42484},
        "rot": [0.00531, -0.01196, 0.00301],
        "trans": [-24.0381, -0.4563, -1.2326],
    },
}
_LABEL_NAME = re.compile(r"^(?P<seq>.+)_(?P<kind>BB|SK)\.mat$")


def rodrigues(rvec: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation matrix of the axis-angle vector `rvec` (radians)."""
    r = np.asarray(rvec, dtype=np.float64)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * (kx @ kx)


def _intrinsics(block: dict, where: str) -> np.ndarray:
    try:
        fx, fy, tx, ty = (float(block[k]) for k in ("fx", "fy", "tx", "ty"))
    except (KeyError, TypeError, ValueError) as exc:
        raise HcdgError(f"{where}: expected numbers fx, fy, tx, ty ({c.one_line(exc)})") from None
    return np.array([[fx, 0.0, tx], [0.0, fy, ty], [0.0, 0.0, 1.0]])


def sequences_under(root: Path) -> list[str]:
    """Sequence names with a label file (`labels/{seq}_BB.mat` or `_SK.mat`) under `root`."""
    try:
        names = os.listdir(root / "labels")
    except OSError:
        return []
    return sorted({m.group("seq") for m in map(_LABEL_NAME.match, names) if m})


class StbDataset:
    """STB split `test` (B1Counting + B1Random) or one sequence, for the chosen `cameras`."""

    dataset = "stb"

    def __init__(self, root: str | Path, split: str = "test", cameras: Sequence[str] | str = DEFAULT_CAMERAS) -> None:
        self.root = Path(root)
        c.require_dir(self.root, "STB root")
        c.require_dir(self.root / "labels", "STB label files {seq}_BB.mat / {seq}_SK.mat")
        if isinstance(cameras, str):
            cameras = (cameras,)
        cameras = tuple(cameras)
        unknown = [cam for cam in cameras if cam not in CAMERAS]
        if unknown or not cameras or len(set(cameras)) != len(cameras):
            raise HcdgError(f"stb: cameras {list(cameras)!r} invalid (expected distinct names from {', '.join(CAMERAS)})")
        if split == "test":
            seqs = TEST_SEQUENCES
        else:
            available = sequences_under(self.root)
            if split not in available:
                raise HcdgError(
                    f"stb: unknown split {split!r} under {self.root} (expected 'test' or a sequence "
                    f"with a label file in labels/: {', '.join(available) or 'none found'})"
                )
            seqs = (split,)
        self.split = split
        self.sequences = tuple(seqs)
        self.cameras = cameras
        self._params, self._params_used = self._load_params()

        kinds = sorted({_CAMERA_FILES[cam][0] for cam in cameras})
        raw: dict[tuple[str, str], np.ndarray] = {}
        self._label_rels: list[str] = []
        for seq in seqs:
            for kind in kinds:
                rel = f"labels/{seq}_{kind}.mat"
                raw[(seq, kind)] = _read_hand_para(self.root / rel)
                self._label_rels.append(rel)

        # blocks in sample order: (sequence, camera, image folder rel, xyz (N,21,3) m, K)
        self._blocks: list[tuple[str, str, str, np.ndarray, np.ndarray]] = []
        self._frames: list[np.ndarray] = []  # per block: the label frame numbers whose image is present
        partial: list[str] = []
        for seq in seqs:
            folder_rel = self._image_folder(seq)
            present = c.list_names(self.root / folder_rel, f"STB images of {seq}")
            for cam in cameras:
                kind, prefix = _CAMERA_FILES[cam]
                xyz_mm = raw[(seq, kind)]
                xyz, K = self._to_camera(xyz_mm, cam)
                c.check_joints(xyz, f"{self.root / f'labels/{seq}_{kind}.mat'} ({cam})", "frame")
                c.check_intrinsics(K[None], str(self.root / CAMERA_PARAMS_FILE), "camera", [cam])
                label = f"labels/{seq}_{kind}.mat"
                frames = np.array([i for i in range(len(xyz)) if f"{prefix}_{i}.png" in present], dtype=np.int64)
                if len(frames) == 0:
                    raise HcdgError(f"{self.root / folder_rel}: none of the {len(xyz)} {prefix} images of {label} "
                                    f"present (expected {prefix}_0.png ...)")
                if len(frames) < len(xyz):  # a partial copy: the frames present, said in `note`
                    partial.append(f"{seq} {prefix}: {len(frames)} of {len(xyz)} frames")
                self._blocks.append((seq, cam, folder_rel, xyz[frames], K))
                self._frames.append(frames)
        #: "" for a complete split; else which frames a partial copy holds (stages print it).
        self.note = ("partial STB folder: only the frames whose image is present are read (" + "; ".join(partial)
                     + ")") if partial else ""
        self._starts = np.cumsum([0] + [len(b[3]) for b in self._blocks])
        self._styles = c.read_synth_styles(self.root)

    # -- set-up ---------------------------------------------------------------
    def _load_params(self) -> tuple[dict, bool]:
        path = self.root / CAMERA_PARAMS_FILE
        if not path.is_file():
            return DEFAULT_CAMERA_PARAMS, False
        data = c.read_json(path, "STB camera parameters")
        if not isinstance(data, dict):
            raise HcdgError(f"{path}: expected a JSON object with BB2Stereo / IRSF200")
        params = {k: data.get(k, v) for k, v in DEFAULT_CAMERA_PARAMS.items()}
        return params, True

    def _image_folder(self, seq: str) -> str:
        if not (self.root / seq).is_dir() and (self.root / "images" / seq).is_dir():
            return f"images/{seq}"
        return seq

    def _to_camera(self, xyz_mm: np.ndarray, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """Label-frame mm (N, 21, 3), STB order -> (camera-frame metres, FreiHAND order; K)."""
        where = self.root / CAMERA_PARAMS_FILE
        xyz_mm = xyz_mm[:, joints.STB_TO_FREIHAND]
        if camera in ("BB_left", "BB_right"):
            bb = self._params["BB2Stereo"]
            K = _intrinsics(bb, f"{where} BB2Stereo")
            if camera == "BB_right":
                try:
                    baseline = float(bb["baseline"])
                except (KeyError, TypeError, ValueError):
                    raise HcdgError(f"{where}: BB2Stereo needs a numeric 'baseline' (mm)") from None
                xyz_mm = xyz_mm - np.array([baseline, 0.0, 0.0])
        else:
            sk = self._params["IRSF200"]
            if not isinstance(sk, dict):
                raise HcdgError(f"{where}: IRSF200 should be an object with color, rot, trans")
            K = _intrinsics(sk.get("color", {}), f"{where} IRSF200.color")
            rot = c.as_array(sk.get("rot"), (3,), f"{where} IRSF200.rot")
            trans = c.as_array(sk.get("trans"), (3,), f"{where} IRSF200.trans")
            # README: (rot, trans) map colour-camera coordinates to depth-camera ones:
            # p_depth = R p_color + t, so p_color = R^T (p_depth - t) (row vectors: (p - t) @ R).
            xyz_mm = (xyz_mm - trans) @ rodrigues(rot)
        return xyz_mm / 1000.0, K

    # -- HandDataset ------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"stb {self.split}: index {index!r} out of range 0..{len(self) - 1}")
        block = int(np.searchsorted(self._starts, index, side="right")) - 1
        return block, int(index) - int(self._starts[block])

    def _rel_image(self, block: int, frame: int) -> str:
        seq, cam, folder, _, _ = self._blocks[block]
        return f"{folder}/{_CAMERA_FILES[cam][1]}_{frame}.png"

    def sample_id(self, index: int) -> str:
        block, pos = self._locate(index)
        seq, cam = self._blocks[block][:2]
        return f"{seq}/{cam}_{int(self._frames[block][pos])}"

    def image_path(self, index: int) -> Path:
        block, pos = self._locate(index)
        return self.root / self._rel_image(block, int(self._frames[block][pos]))

    def annotation(self, index: int) -> Sample:
        block, pos = self._locate(index)
        seq, cam, _, xyz_all, K = self._blocks[block]
        xyz = xyz_all[pos].copy()
        frame = int(self._frames[block][pos])
        rel = self._rel_image(block, frame)
        extra: dict = {"sequence": seq, "camera": cam, "frame": frame}
        if rel in self._styles:
            extra["style"] = self._styles[rel]
        return Sample(
            dataset=self.dataset, split=self.split, index=int(index), sample_id=f"{seq}/{cam}_{frame}",
            image_path=self.root / rel, K=K.copy(), xyz=xyz, uv=project(xyz, K),
            visible=np.ones(21, dtype=bool), side="left", root="palm", extra=extra,
        )

    def __getitem__(self, index: int) -> Sample:
        return c.with_image(self.annotation(index))

    def manifest(self) -> list[tuple[str, int]]:
        rels = list(self._label_rels)
        if self._params_used:
            rels.append(CAMERA_PARAMS_FILE)
        rels += c.sidecar_rels(self.root)
        for block, frames in enumerate(self._frames):
            rels += [self._rel_image(block, int(f)) for f in frames]
        return c.file_sizes(self.root, rels)


def _read_hand_para(path: Path) -> np.ndarray:
    """`handPara` of an STB label file as (n_frames, 21, 3) mm, STB joint order."""
    import scipy.io

    if not path.is_file():
        raise HcdgError(f"{path}: missing STB label file")
    try:
        mat = scipy.io.loadmat(path, variable_names=["handPara"])
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for bad files
        raise HcdgError(f"{path}: cannot read .mat label file ({c.one_line(exc) or type(exc).__name__})") from None
    if "handPara" not in mat:
        raise HcdgError(f"{path}: no 'handPara' variable (expected (3, 21, n_frames) mm)")
    para = np.asarray(mat["handPara"], dtype=np.float64)
    if para.ndim != 3 or para.shape[:2] != (3, 21) or para.shape[2] == 0:
        raise HcdgError(f"{path}: 'handPara' has shape {para.shape}, expected (3, 21, n_frames)")
    return np.ascontiguousarray(para.transpose(2, 1, 0))
