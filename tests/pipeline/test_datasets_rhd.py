"""RHD reader on a tiny RHD_published_v2 root built from the three real RHD images and their labels."""

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hcdg.pipeline import joints
from hcdg.pipeline.datasets import HandDataset, open_dataset
from hcdg.pipeline.datasets.rhd import RhdDataset
from hcdg.pipeline.errors import HcdgError

OTHER_SHIFT_M = np.array([0.06, 0.01, 0.0])  # the unlabelled hand: the labelled one moved 6 cm
HIDDEN_RHD = 1  # RHD per-hand index of the thumb TIP, marked invisible (FreiHAND index 4)


@pytest.fixture(scope="module")
def rhd(realdata) -> Path:
    """The real RHD sample: three evaluation images and their labels (test_rhd.json)."""
    return realdata / "rhd"


def _real_labels(rhd: Path) -> dict[int, dict]:
    """id -> {'side', 'xyz_m' (21,3) RHD order, 'uv' (21,2), 'K', 'bbox'} from test_rhd.json."""
    data = json.loads((rhd / "test_rhd.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    out = {}
    for a in data["annotations"]:
        cam = images[a["image_id"]]["cam_param"]
        K = np.array([[cam["focal"][0], 0, cam["princpt"][0]], [0, cam["focal"][1], cam["princpt"][1]], [0, 0, 1]])
        out[a["image_id"]] = {
            "side": a["hand_type"], "xyz_m": np.asarray(a["joint_cam"]) / 1000.0,
            "uv": np.asarray(a["keypoints"], dtype=float)[:, :2], "K": K, "bbox": a["bbox"],
        }
    return out


def _mask(label: dict, swap: bool) -> np.ndarray:
    """Person (1) background blob, the labelled hand over its bbox, the other hand as a small patch."""
    m = np.zeros((320, 320), np.uint8)
    m[150:300, 20:120] = 1
    x, y, w, h = (int(v) for v in label["bbox"])
    own, other = ((2, 17), (18, 33)) if label["side"] == "left" else ((18, 33), (2, 17))
    if swap:
        own, other = other, own
    big = np.arange(h * w).reshape(h, w) % (own[1] - own[0] + 1) + own[0]
    m[y:y + h, x:x + w] = big
    m[5:25, 5:25] = np.arange(400).reshape(20, 20) % (other[1] - other[0] + 1) + other[0]
    return m


def _rhd_root(tmp_path: Path, rhd: Path, swap: tuple[int, ...] = ()) -> Path:
    root = tmp_path / "RHD_published_v2"
    ev = root / "evaluation"
    for sub in ("color", "mask", "depth"):
        (ev / sub).mkdir(parents=True)
    anno = {}
    for i, lab in _real_labels(rhd).items():
        shutil.copy(rhd / f"{i:05d}.png", ev / "color" / f"{i:05d}.png")
        Image.fromarray(_mask(lab, i in swap)).save(ev / "mask" / f"{i:05d}.png")
        other = lab["xyz_m"] + OTHER_SHIFT_M
        other_uv = other @ lab["K"].T
        uv_vis_own = np.c_[lab["uv"], np.ones(21)]
        uv_vis_own[HIDDEN_RHD, 2] = 0
        uv_vis_other = np.c_[other_uv[:, :2] / other_uv[:, 2:], np.ones(21)]
        hands = [(lab["xyz_m"], uv_vis_own), (other, uv_vis_other)]
        if lab["side"] == "right":
            hands.reverse()
        anno[i] = {
            "xyz": np.concatenate([hands[0][0], hands[1][0]]).astype(np.float32),
            "uv_vis": np.concatenate([hands[0][1], hands[1][1]]),
            "K": lab["K"].astype(np.float32),
        }
    (ev / "anno_evaluation.pickle").write_bytes(pickle.dumps(anno, protocol=2))
    return root


def test_real_images_decode_and_labelled_hand_is_chosen(tmp_path, rhd):
    ds = open_dataset("rhd", _rhd_root(tmp_path, rhd))  # default split: evaluation
    assert isinstance(ds, HandDataset) and (ds.dataset, ds.split) == ("rhd", "evaluation")
    labels = _real_labels(rhd)
    assert len(ds) == 3 and [ds.sample_id(i) for i in range(3)] == ["00111", "01111", "11111"]
    for i, (rid, lab) in enumerate(sorted(labels.items())):
        s = ds[i]
        assert s.image.shape == (320, 320, 3) and s.image.dtype == np.uint8
        assert s.image_path.name == f"{rid:05d}.png" and s.image_path.parent.name == "color"
        assert s.side == lab["side"] and s.root == "wrist"
        np.testing.assert_allclose(s.xyz, lab["xyz_m"][joints.RHD_TO_FREIHAND], atol=1e-6)
        np.testing.assert_allclose(s.uv, lab["uv"][joints.RHD_TO_FREIHAND])
        np.testing.assert_allclose(s.K, lab["K"], atol=1e-4)
        assert s.visible.tolist() == [j != 4 for j in range(21)]  # RHD thumb tip -> FreiHAND 4
        # the reorder and the intrinsics agree: xyz projects onto uv (real labels, < 0.5 px)
        proj = s.xyz @ s.K.T
        assert np.abs(proj[:, :2] / proj[:, 2:] - s.uv).max() < 0.5
        # FreiHAND order, checked on rigid bone lengths (pose-independent): per finger the
        # proximal phalanx (MCP->PIP) is longer than the distal one (DIP->tip), and the palm
        # bone (wrist->MCP) longer still for the four fingers
        bone = lambda a, b: np.linalg.norm(s.xyz[a] - s.xyz[b])  # noqa: E731
        for f in joints.FINGERS:
            m = joints.MCP[f]
            assert bone(m, m + 1) > bone(m + 2, m + 3)
            assert f == "thumb" or bone(0, m) > bone(m, m + 1)
        px = s.extra["mask_pixels"]
        assert px[s.side] > px["right" if s.side == "left" else "left"] > 0


def test_more_mask_pixels_decides_the_hand(tmp_path, rhd):
    ds = RhdDataset(_rhd_root(tmp_path, rhd, swap=(111,)), "evaluation")
    lab = _real_labels(rhd)[111]
    s = ds.annotation(0)
    assert lab["side"] == "left" and s.side == "right"  # the mask now favours the other hand
    np.testing.assert_allclose(s.xyz, (lab["xyz_m"] + OTHER_SHIFT_M)[joints.RHD_TO_FREIHAND], atol=1e-6)
    assert s.visible.all()
    assert ds.hand_sides() == ["right", "left", "right"]


def test_masks_are_read_lazily_and_fixed_hand_needs_none(tmp_path, rhd):
    root = _rhd_root(tmp_path, rhd)
    bad = root / "evaluation" / "mask" / "01111.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = open_dataset("rhd", root)  # opening reads no mask
    assert ds.annotation(0).side == "left"
    with pytest.raises(HcdgError) as info:
        ds.annotation(1)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    fixed = open_dataset("rhd", root, hand="left")
    s = fixed.annotation(1)
    assert s.side == "left" and "mask_pixels" not in s.extra
    np.testing.assert_allclose(s.xyz, _real_labels(rhd)[1111]["xyz_m"][joints.RHD_TO_FREIHAND], atol=1e-6)


def test_manifest(tmp_path, rhd):
    root = _rhd_root(tmp_path, rhd)
    man = open_dataset("rhd", root).manifest()
    rels = [r for r, _ in man]
    assert rels[0] == "evaluation/anno_evaluation.pickle"
    assert rels[1:] == [f"evaluation/{k}/{i:05d}.png" for k in ("color", "mask") for i in (111, 1111, 11111)]
    assert all(size == (root / r).stat().st_size for r, size in man)
    # a fixed hand reads no masks, so they are not part of what the split depends on
    assert [r for r, _ in open_dataset("rhd", root, hand="right").manifest()] == rels[:4]


def test_synthetic_sidecar_style_is_copied(tmp_path, rhd):
    root = _rhd_root(tmp_path, rhd)
    sidecar = {"generator": "test", "style": "mixed-target", "images": {
        "evaluation/color/01111.png": {"style": {"hand_colour": "peach", "colour": "green"}, "side": "left"}}}
    (root / "hcdg_synth.json").write_text(json.dumps(sidecar))
    ds = open_dataset("rhd", root)
    assert ds.annotation(1).extra["style"] == {"hand_colour": "peach", "colour": "green"}
    assert "style" not in ds.annotation(0).extra
    assert [r for r, _ in ds.manifest()][:2] == ["evaluation/anno_evaluation.pickle", "hcdg_synth.json"]


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_crafted_annotation_pickle_is_refused(tmp_path, rhd):
    root = _rhd_root(tmp_path, rhd)
    anno = root / "evaluation" / "anno_evaluation.pickle"
    marker = tmp_path / "executed"
    anno.write_bytes(pickle.dumps({0: {"xyz": _Evil(marker)}}, protocol=2))
    with pytest.raises(HcdgError) as info:
        open_dataset("rhd", root)
    msg = str(info.value)
    assert str(anno) in msg and "system" in msg and "\n" not in msg
    assert not marker.exists()


def test_bad_roots_are_one_clear_line(tmp_path, rhd):
    root = _rhd_root(tmp_path, rhd)
    anno = root / "evaluation" / "anno_evaluation.pickle"
    (root / "evaluation" / "color" / "01111.png").unlink()
    with pytest.raises(HcdgError, match=r"color: 1 of 3 expected color images .*missing \(first: 01111\.png\)"):
        open_dataset("rhd", root)
    with pytest.raises(HcdgError, match=r"anno_training\.pickle"):
        open_dataset("rhd", root, "training")
    good = anno.read_bytes()
    anno.write_bytes(pickle.dumps({"0": {}}, protocol=2))
    with pytest.raises(HcdgError, match="expected non-negative int ids as keys, found '0'"):
        open_dataset("rhd", root)
    data = pickle.loads(good)
    data[1111]["uv_vis"] = data[1111]["uv_vis"][:21]
    anno.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(HcdgError, match=r"id 1111 'uv_vis': expected shape \(42, 3\), got \(21, 3\)"):
        open_dataset("rhd", root)
    with pytest.raises(HcdgError, match="unknown option 'cameras'"):
        open_dataset("rhd", root, cameras=("BB_left",))
