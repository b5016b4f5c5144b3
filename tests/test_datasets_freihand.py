"""FreiHAND reader: the real 32,560-pose x 4-version layout with the eight real training JPEGs."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hcdg.pipeline.datasets import HandDataset, open_dataset
from hcdg.pipeline.datasets.freihand import FreiHandDataset
from hcdg.pipeline.errors import HcdgError

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("HCDG_REALDATA", REPO.parent / "shared" / "realdata"))
FREI = REALDATA / "freihand"
N_POSES = 32560  # the real training set (docs/sources.md#freihand): what the test layout mimics
K_REAL = np.array([[480.0, 0.0, 111.5], [0.0, 480.0, 112.5], [0.0, 0.0, 1.0]])


def _empty(path: Path) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _real_keypoints() -> dict[int, np.ndarray]:
    """Image id -> (21, 2) px 2D keypoints of the eight real images (test_freihand.json)."""
    data = json.loads((FREI / "test_freihand.json").read_text())
    return {a["image_id"]: np.asarray(a["keypoints"], dtype=float).reshape(21, 3)[:, :2] for a in data["annotations"]}


def _json_rows(n: int, default: str, overrides: dict[int, str]) -> str:
    return "[" + ",".join(overrides.get(i, default) for i in range(n)) + "]"


@pytest.fixture(scope="module")
def real_root(many_files_dir):
    """A FreiHAND root: 130,240 image names (8 real JPEGs at their ids, the rest empty), and
    32,560-entry annotation files where poses 355 and 17620 back-project the real 2D keypoints."""
    if not (FREI / "test_freihand.json").is_file():
        pytest.skip(f"real FreiHAND sample not found at {FREI} (set HCDG_REALDATA to the realdata folder)")
    root = many_files_dir / "freihand"
    rgb = root / "training" / "rgb"
    rgb.mkdir(parents=True)
    kps = _real_keypoints()
    _empty(many_files_dir / "placeholder")  # 130k hard links to one empty file: cheapest to create
    src, dst = os.open(many_files_dir, os.O_RDONLY), os.open(rgb, os.O_RDONLY)
    try:
        for i in range(4 * N_POSES):
            if i not in kps:
                os.link("placeholder", f"{i:08d}.jpg", src_dir_fd=src, dst_dir_fd=dst)
    finally:
        os.close(src)
        os.close(dst)
    for i in kps:
        shutil.copy(FREI / f"{i:08d}.jpg", rgb)
    xyz_rows, k_rows = {}, {}
    for pose in {i % N_POSES for i in kps}:
        uv = kps[pose]
        z = 0.55 + 0.01 * np.arange(21)
        xyz = np.stack([(uv[:, 0] - K_REAL[0, 2]) * z / K_REAL[0, 0], (uv[:, 1] - K_REAL[1, 2]) * z / K_REAL[1, 1], z], 1)
        xyz_rows[pose] = json.dumps(xyz.tolist())
        k_rows[pose] = json.dumps(K_REAL.tolist())
    dummy_xyz = json.dumps([[0.1 + 0.001 * j, 0.2, 0.5] for j in range(21)])  # not all at one point (degenerate)
    dummy_k = json.dumps([[500.0, 0, 112], [0, 500.0, 112], [0, 0, 1]])
    (root / "training_xyz.json").write_text(_json_rows(N_POSES, dummy_xyz, xyz_rows))
    (root / "training_K.json").write_text(_json_rows(N_POSES, dummy_k, k_rows))
    (root / "training_scale.json").write_text(json.dumps([0.03] * N_POSES))
    return root


@pytest.fixture(scope="module")
def real_ds(real_root):
    return open_dataset("freihand", real_root)  # default split: training


def test_real_images_map_to_their_poses(real_ds, real_root):
    ds = real_ds
    assert (len(ds), ds.n_poses, ds.versions) == (4 * N_POSES, N_POSES, 4)
    kps = _real_keypoints()
    assert sorted({i % N_POSES for i in kps}) == [355, 17620]
    crops = {}
    for i, uv in kps.items():
        s = ds[i]
        assert s.sample_id == f"{i:08d}" and s.image_path == real_root / "training" / "rgb" / f"{i:08d}.jpg"
        assert s.extra["pose_index"] == i % N_POSES and s.extra["version"] == i // N_POSES
        assert (s.side, s.root) == ("right", "wrist") and s.visible.all()
        assert s.image.shape == (224, 224, 3) and s.image.dtype == np.uint8
        np.testing.assert_allclose(s.K, K_REAL)
        np.testing.assert_allclose(s.uv, uv, atol=1e-6)  # every version shows its pose's keypoints
        x0, y0 = np.floor(uv.min(0)).astype(int)
        x1, y1 = np.ceil(uv.max(0)).astype(int)
        crops[i] = (s.image.astype(float), (x0, y0, x1, y1))
    # independent of our annotations: each real image looks most like another version of its own pose
    for i, (img, (x0, y0, x1, y1)) in crops.items():
        diffs = {j: np.abs(img[y0:y1, x0:x1] - other[y0:y1, x0:x1]).mean() for j, (other, _) in crops.items() if j != i}
        assert min(diffs, key=diffs.get) % N_POSES == i % N_POSES


def test_manifest_lists_annotations_then_every_image(real_ds):
    assert isinstance(real_ds, FreiHandDataset) and isinstance(real_ds, HandDataset)
    man = real_ds.manifest()
    assert len(man) == 3 + 4 * N_POSES
    assert [r for r, _ in man[:3]] == ["training_xyz.json", "training_K.json", "training_scale.json"]
    assert man[3] == ("training/rgb/00000000.jpg", 0)
    assert man[3 + 355] == ("training/rgb/00000355.jpg", (FREI / "00000355.jpg").stat().st_size)


def _small_root(tmp_path: Path, n: int = 2, split: str = "training", versions: int = 4) -> Path:
    root = tmp_path / "frei"
    (root / split / "rgb").mkdir(parents=True)
    (root / f"{split}_xyz.json").write_text(json.dumps([[[0.01 * j, 0.0, 0.5] for j in range(21)]] * n))
    (root / f"{split}_K.json").write_text(json.dumps([K_REAL.tolist()] * n))
    (root / f"{split}_scale.json").write_text(json.dumps([0.03] * n))
    src = FREI / "00000355.jpg"
    for i in range(versions * n):
        if src.is_file():
            shutil.copy(src, root / split / "rgb" / f"{i:08d}.jpg")
        else:
            from PIL import Image

            Image.new("RGB", (224, 224)).save(root / split / "rgb" / f"{i:08d}.jpg")
    return root


def test_evaluation_split_one_image_per_pose(tmp_path):
    root = _small_root(tmp_path, n=3, split="evaluation", versions=1)
    ds = open_dataset("freihand", root, "evaluation")
    assert len(ds) == 3 and "version" not in ds.annotation(2).extra
    s = ds.annotation(2)
    np.testing.assert_allclose(s.uv[1], K_REAL[:2, :2] @ [0.02, 0.0] + K_REAL[:2, 2])  # (x/z f + c)
    with pytest.raises(HcdgError, match="training_xyz.json"):
        open_dataset("freihand", root, "training")


def test_missing_annotation_file_is_one_clear_line(tmp_path):
    root = _small_root(tmp_path)
    (root / "training_K.json").unlink()
    with pytest.raises(HcdgError) as info:
        open_dataset("freihand", root)
    msg = str(info.value)
    assert "\n" not in msg and str(root / "training_K.json") in msg and "missing" in msg


def test_image_count_mismatch_is_one_clear_line(tmp_path):
    root = _small_root(tmp_path)
    (root / "training" / "rgb" / "00000005.jpg").unlink()
    with pytest.raises(HcdgError) as info:
        open_dataset("freihand", root)
    msg = str(info.value)
    assert "\n" not in msg and str(root / "training" / "rgb") in msg
    assert "found 7 images" in msg and "expected 8" in msg and "4 versions x 2 poses" in msg
    # right count, wrong names: the first missing one is named
    (root / "training" / "rgb" / "00000042.jpg").write_bytes(b"")
    with pytest.raises(HcdgError, match=r"1 of 8 expected images missing \(first: 00000005\.jpg\)"):
        open_dataset("freihand", root)


def test_inconsistent_annotation_lengths(tmp_path):
    root = _small_root(tmp_path)
    (root / "training_scale.json").write_text(json.dumps([0.03] * 3))
    with pytest.raises(HcdgError, match=r"training_scale.json: expected shape \(2\), got \(3,\)"):
        open_dataset("freihand", root)
    (root / "training_scale.json").write_text("[0.03, ")
    with pytest.raises(HcdgError, match="training_scale.json: cannot read bone scales"):
        open_dataset("freihand", root)


def test_corrupt_image_names_the_file(tmp_path):
    root = _small_root(tmp_path)
    bad = root / "training" / "rgb" / "00000006.jpg"
    bad.write_bytes(bad.read_bytes()[:300])  # truncated JPEG
    ds = open_dataset("freihand", root)
    ds.annotation(6)  # annotations never decode the image
    with pytest.raises(HcdgError) as info:
        ds[6]
    assert str(bad) in str(info.value) and "cannot decode image" in str(info.value)
    assert "\n" not in str(info.value)
