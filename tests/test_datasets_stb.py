"""STB reader on the real label file (B1Counting_BB.mat) and real frame-0 stereo images."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hcdg.pipeline import joints
from hcdg.pipeline.datasets import HandDataset, open_dataset
from hcdg.pipeline.datasets.stb import StbDataset, rodrigues
from hcdg.pipeline.errors import HcdgError

REPO = Path(__file__).resolve().parent.parent
REALDATA = Path(os.environ.get("HCDG_REALDATA", REPO.parent / "shared" / "realdata"))
STB = REALDATA / "stb"
needs_real = pytest.mark.skipif(
    not (STB / "labels" / "B1Counting_BB.mat").is_file(),
    reason=f"real STB sample not found at {STB} (set HCDG_REALDATA to the realdata folder)",
)


def _stb_root(tmp_path: Path, n_frames: int | None = None, params: bool = True) -> Path:
    """An STB root: the real label file (or its first `n_frames`), real frame-0 images, placeholders."""
    root = tmp_path / "stb"
    (root / "labels").mkdir(parents=True)
    seq = root / "B1Counting"
    seq.mkdir()
    if n_frames is None:
        shutil.copy(STB / "labels" / "B1Counting_BB.mat", root / "labels")
        n = scipy.io.loadmat(STB / "labels" / "B1Counting_BB.mat")["handPara"].shape[2]
    else:
        para = scipy.io.loadmat(STB / "labels" / "B1Counting_BB.mat")["handPara"][:, :, :n_frames]
        scipy.io.savemat(root / "labels" / "B1Counting_BB.mat", {"handPara": para})
        n = n_frames
    if params:
        shutil.copy(STB / "camera_params.json", root)
    for cam in ("left", "right"):
        shutil.copy(STB / "B1Counting" / f"BB_{cam}_0.png", seq)
        for i in range(1, n):
            os.close(os.open(seq / f"BB_{cam}_{i}.png", os.O_CREAT | os.O_WRONLY, 0o644))
    return root


@pytest.fixture(scope="module")
def real_root(many_files_dir):
    """The full real B1Counting label file (1,500 frames), real frame-0 images, placeholders."""
    if not (STB / "labels" / "B1Counting_BB.mat").is_file():
        pytest.skip(f"real STB sample not found at {STB} (set HCDG_REALDATA to the realdata folder)")
    return _stb_root(many_files_dir)


@needs_real
def test_real_labels_project_into_the_left_image(real_root):
    ds = open_dataset("stb", real_root, split="B1Counting")
    assert isinstance(ds, HandDataset)
    assert len(ds) == 1500  # from the .mat, not hard-coded in the reader
    s = ds[0]
    assert s.sample_id == "B1Counting/BB_left_0"
    assert s.image.shape == (480, 640, 3) and s.image.dtype == np.uint8
    assert (s.side, s.root) == ("left", "palm")
    raw = scipy.io.loadmat(STB / "labels" / "B1Counting_BB.mat")["handPara"][:, :, 0].T  # (21, 3) mm, STB order
    np.testing.assert_allclose(s.xyz, raw[joints.STB_TO_FREIHAND] / 1000.0)
    # in the image, in front of the camera
    assert (s.xyz[:, 2] > 0.2).all() and (s.xyz[:, 2] < 1.5).all()
    assert (s.uv[:, 0] >= 0).all() and (s.uv[:, 0] < 640).all()
    assert (s.uv[:, 1] >= 0).all() and (s.uv[:, 1] < 480).all()
    # a plausible hand in FreiHAND order: every bone 15-60 mm, palm centre near the middle MCP
    bones_mm = [1000 * np.linalg.norm(s.xyz[c] - s.xyz[p]) for p, c in joints.BONES]
    assert min(bones_mm) > 14.5 and max(bones_mm) < 60, bones_mm
    assert 1000 * np.linalg.norm(s.xyz[0] - s.xyz[joints.MIDDLE_MCP]) < 50
    # fingers: tips farther from the palm than MCPs (open hand)
    for f in joints.FINGERS:
        m = joints.MCP[f]
        assert np.linalg.norm(s.xyz[m + 3] - s.xyz[0]) > np.linalg.norm(s.xyz[m] - s.xyz[0])
    # frame 0 is an open hand (the skeleton drawn on BB_left_0 matches it): the thumb tip is
    # the fingertip farthest from the middle fingertip, and the thumb lies at the image's lower left
    tips = [joints.MCP[f] + 3 for f in joints.FINGERS]
    far = max(tips, key=lambda t: np.linalg.norm(s.xyz[t] - s.xyz[joints.MCP["middle"] + 3]))
    assert far == joints.MCP["thumb"] + 3
    assert s.uv[tips[0], 1] == s.uv[tips, 1].max() and s.uv[tips[0], 0] == s.uv[tips, 0].min()
    # the projected hand lies on skin-coloured pixels (the hand is brighter/redder than the patterned
    # background at the palm and MCPs: mean red channel at the joints above the image mean)
    px = s.image[s.uv[[0, 5, 9, 13, 17], 1].astype(int), s.uv[[0, 5, 9, 13, 17], 0].astype(int)]
    assert px[:, 0].mean() > s.image[..., 0].mean()


@needs_real
def test_right_camera_is_shifted_left_by_the_baseline(real_root):
    ds = StbDataset(real_root, "B1Counting", cameras=("BB_left", "BB_right"))
    assert len(ds) == 3000
    left, right = ds.annotation(0), ds[1500]
    assert right.sample_id == "B1Counting/BB_right_0"
    assert right.image_path.name == "BB_right_0.png" and right.image.shape == (480, 640, 3)
    np.testing.assert_allclose(left.xyz - right.xyz, np.tile([0.120054, 0, 0], (21, 1)), atol=1e-12)
    assert (right.uv[:, 0] >= 0).all() and (right.uv[:, 0] < 640).all()
    assert (right.uv[:, 1] >= 0).all() and (right.uv[:, 1] < 480).all()
    shift = left.uv - right.uv  # disparity = f * baseline / z
    np.testing.assert_allclose(shift[:, 0], 822.79041 * 0.120054 / left.xyz[:, 2], rtol=1e-9)
    np.testing.assert_allclose(shift[:, 1], 0, atol=1e-9)
    assert (shift[:, 0] > 50).all()


@needs_real
def test_synthetic_length_sequence_and_sk_camera(tmp_path):
    root = _stb_root(tmp_path, n_frames=8, params=False)
    (root / "labels" / "B1Counting_BB.mat").rename(root / "labels" / "B1Counting_SK.mat")
    for i in range(8):
        (root / "B1Counting" / f"SK_color_{i}.png").touch()
    ds = open_dataset("stb", root, split="B1Counting", cameras=("SK",))
    assert len(ds) == 8 and ds.sample_id(7) == "B1Counting/SK_7"
    s = ds.annotation(3)
    # defaults = STB README values; depth -> colour frame: p_color = R^T (p_depth - t)
    raw = scipy.io.loadmat(root / "labels" / "B1Counting_SK.mat")["handPara"][:, :, 3].T[joints.STB_TO_FREIHAND]
    R = rodrigues([0.00531, -0.01196, 0.00301])
    expect = (R.T @ (raw - [-24.0381, -0.4563, -1.2326]).T).T / 1000
    np.testing.assert_allclose(s.xyz, expect, atol=1e-12)
    np.testing.assert_allclose(s.K, [[607.92271, 0, 314.78337], [0, 607.88192, 236.42484], [0, 0, 1]])
    assert ds.manifest()[0] == ("labels/B1Counting_SK.mat", os.path.getsize(root / "labels" / "B1Counting_SK.mat"))
    # BB cameras need the BB label file, which this root lacks
    with pytest.raises(HcdgError, match=r"B1Counting_BB\.mat: missing STB label file"):
        open_dataset("stb", root, split="B1Counting")


def test_rodrigues_hand_worked():
    # 90 degrees about z maps x to y
    np.testing.assert_allclose(rodrigues([0, 0, np.pi / 2]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    r = rodrigues([0.3, -0.2, 0.1])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(r @ [0.3, -0.2, 0.1], [0.3, -0.2, 0.1], atol=1e-12)  # axis is fixed


@needs_real
def test_camera_params_file_is_used_when_present(tmp_path):
    root = _stb_root(tmp_path, n_frames=2)
    params = json.loads((root / "camera_params.json").read_text())
    params["BB2Stereo"]["fx"] = 500.0
    (root / "camera_params.json").write_text(json.dumps(params))
    s = open_dataset("stb", root, split="B1Counting").annotation(1)
    assert s.K[0, 0] == 500.0 and s.K[1, 1] == 822.79041
    rels = [r for r, _ in open_dataset("stb", root, split="B1Counting").manifest()]
    assert rels == ["labels/B1Counting_BB.mat", "camera_params.json",
                    "B1Counting/BB_left_0.png", "B1Counting/BB_left_1.png"]


@needs_real
def test_missing_frame_image_and_bad_options(tmp_path):
    root = _stb_root(tmp_path, n_frames=8)
    (root / "B1Counting" / "BB_left_5.png").unlink()
    # a partial copy reads the frames present (with their own labels) and says how many
    ds = open_dataset("stb", root, split="B1Counting")
    assert len(ds) == 7 and "7 of 8 frames" in ds.note
    assert ds.sample_id(5) == "B1Counting/BB_left_6" and ds.annotation(5).extra["frame"] == 6
    full = ds._blocks[0][3]
    np.testing.assert_array_equal(ds.annotation(5).xyz, full[5])
    for f in range(8):
        if f != 5:
            (root / "B1Counting" / f"BB_left_{f}.png").unlink()
    with pytest.raises(HcdgError) as info:
        open_dataset("stb", root, split="B1Counting")
    msg = str(info.value)
    assert "\n" not in msg and str(root / "B1Counting") in msg and "none of the 8" in msg
    with pytest.raises(HcdgError, match="unknown split 'B9Nothing'.*B1Counting"):
        open_dataset("stb", root, split="B9Nothing")
    with pytest.raises(HcdgError, match="cameras"):
        open_dataset("stb", root, split="B1Counting", cameras=("BB_middle",))
    with pytest.raises(HcdgError, match="B1Random_BB.mat: missing STB label file"):
        open_dataset("stb", root)  # test = B1Counting + B1Random


def test_malformed_label_file(tmp_path):
    (tmp_path / "labels").mkdir()
    scipy.io.savemat(tmp_path / "labels" / "B1Counting_BB.mat", {"handPara": np.zeros((3, 20, 4))})
    with pytest.raises(HcdgError, match=r"'handPara' has shape \(3, 20, 4\), expected \(3, 21, n_frames\)"):
        open_dataset("stb", tmp_path, split="B1Counting")
    (tmp_path / "labels" / "B1Counting_BB.mat").write_bytes(b"not a mat file")
    with pytest.raises(HcdgError, match="cannot read .mat label file"):
        open_dataset("stb", tmp_path, split="B1Counting")
