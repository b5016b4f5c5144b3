"""The authors' protocol crops: cv2.flip first, their float32 affine, black border, uint8 truncation;
test-time --scale / --rot; per-axis errors; RHD's three dropped files."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from hcdg.pipeline import authors, camera, crop_cv2, eval_crops, protocols
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.transforms import CropConfig
from tests.authors_reference import their_test_crop

REALDATA = Path(os.environ.get("HCDG_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))


def test_a_box_across_the_image_edge_blends_the_edge_pixel_with_black_and_truncates():
    """Hand-built: a constant 203 image, a box sticking 3 px out on the left and scaled 1.5x, so crop
    column 3 samples x = -0.5 and row 1 samples y = -0.5 (half image pixel, half black border)."""
    img = np.full((12, 16, 3), 203, np.uint8)
    fwd, inv = crop_cv2.box_affines([-3.0, 0.0, 8.0, 8.0], 8, scale=1.5)
    crop = crop_cv2.cut_crop(img, fwd, 8, flip=False)[..., 0]
    # cv2: 0.5 * 203 = 101.5 -> uint8 truncation 101 (rounding would give 102); corner 0.25 * 203 = 50.75 -> 50
    assert crop[2, 3] == 101 and crop[1, 4] == 101 and crop[1, 3] == 50
    assert crop[2:, 4:].min() == crop[2:, 4:].max() == 203 and crop[:, :3].max() == 0 and crop[0].max() == 0
    # exactly their pipeline (float32 image, warpAffine, astype(uint8)), pixel for pixel
    ref, trans, ref_inv = their_test_crop(img, [-3.0, 0.0, 8.0, 8.0], left=False, scale=1.5, size=8)
    np.testing.assert_array_equal(crop, np.round(ref[0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(fwd[:2], trans)
    np.testing.assert_array_equal(inv[:2], ref_inv)
    # hcdg's PIL warp does not blend that ring with black: why the authors' protocol cuts with cv2
    pil = camera.warp_to_crop(img, fwd, 8)[..., 0]
    assert pil[2, 3] == 203 and pil[1, 4] == 0


def test_left_hands_are_flipped_whole_first_then_warped():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    box = [-7.6, 9.2, 33.9, 33.9]  # crosses the left edge of the flipped image
    fwd, _ = crop_cv2.box_affines(box, 32, scale=1.1, rot_deg=12.0)
    crop = crop_cv2.cut_crop(img, fwd, 32, flip=True)
    ref = their_test_crop(img, box, left=True, scale=1.1, rot=12.0, size=32)[0]
    np.testing.assert_array_equal(crop.transpose(2, 0, 1), np.round(ref * 255).astype(np.uint8))
    # by hand: cv2.flip, then the warp of the float32 image, then truncation
    by_hand = cv2.warpAffine(cv2.flip(img.astype(np.float32), 1), fwd[:2], (32, 32), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crop, by_hand.astype(np.uint8))
    # warping the unflipped image is another crop altogether
    assert not np.array_equal(crop, crop_cv2.cut_crop(img, fwd, 32, flip=False))


@pytest.mark.parametrize("scale, rot", [(1.0, 0.0), (1.25, -20.0)])
def test_eval_crop_of_a_left_hand_sample_is_their_crop(synth_stb, scale, rot):
    """A synthetic STB sample (left hand) through hcdg's eval crop == their Dataset.__getitem__ crop:
    the network input, img2bb_trans and bb2img_trans, exactly."""
    from hcdg.pipeline.datasets import open_dataset

    reader = open_dataset("stb", synth_stb)
    sample = reader[0]
    assert sample.side == "left"
    crop_cfg = CropConfig(input_size=64)
    uv_m = np.column_stack([640 - 1 - sample.uv[:, 0], sample.uv[:, 1]])
    c = uv_m.mean(0)
    box = np.array([c[0] - 80.4, c[1] - 70.7, 150.9, 150.9])
    out = eval_crops.eval_crop(sample, crop_cfg, backend="cv2", scale=scale, rot_deg=rot, box_xywh=box)
    ref, trans, inv = their_test_crop(sample.image, box, left=True, scale=scale, rot=rot, size=64)
    assert out["image"].dtype == np.float32 and out["mirrored"]
    np.testing.assert_array_equal(out["image"], ref)
    np.testing.assert_array_equal(out["crop_from_image"][:2], trans)
    np.testing.assert_array_equal(out["image_from_crop"][:2], inv)
    # hcdg's own crop of the same box (PIL, mirror folded in) is NOT bit-identical
    if rot == 0.0:
        pil = eval_crops.eval_crop(sample, crop_cfg, backend="pil", scale=scale, rot_deg=0.0, box_xywh=box)
        assert not np.array_equal(pil["image"], out["image"])


def test_real_stb_frame_with_its_released_box():
    """Frame 0 of STB B1Counting with row 0 of their STB_bbox.npy (it crosses the image border, as
    98% of their STB rows do): cv2 crop == their pipeline; PIL differs in the border ring."""
    img_path = REALDATA / "stb" / "B1Counting" / "BB_left_0.png"
    boxes_path = REALDATA / "seed-bboxes" / "STB_bbox.npy"
    if not (img_path.is_file() and boxes_path.is_file()):
        pytest.skip("real STB frame / released boxes not found")
    from PIL import Image

    img = np.asarray(Image.open(img_path).convert("RGB"))
    box = np.load(boxes_path)[0]
    fwd, _ = crop_cv2.box_affines(box, 256)
    crop = crop_cv2.cut_crop(img, fwd, 256, flip=True)
    ref = their_test_crop(img, box, left=True)[0]
    np.testing.assert_array_equal(crop.transpose(2, 0, 1), np.round(ref * 255).astype(np.uint8))
    pil = camera.warp_to_crop(img, fwd @ np.array([[-1.0, 0, img.shape[1] - 1], [0, 1, 0], [0, 0, 1]]), 256)
    assert np.abs(pil.astype(int) - crop.astype(int)).max() > 8


def test_scaled_and_rotated_crops_decode_back_exactly(synth_rhd):
    """--scale / --rot change only the crop: their uvd target under a turned, zoomed crop decodes
    (RHD variant, through their bb2img_trans) to the ground truth; the hand turns by -rot in the crop."""
    from hcdg.pipeline.datasets import open_dataset

    reader = open_dataset("rhd", synth_rhd)
    sample = reader[0]
    cfg = CropConfig(input_size=64)
    base = eval_crops.eval_crop(sample, cfg, backend="cv2", scale=1.0, rot_deg=0.0)
    out = eval_crops.eval_crop(sample, cfg, backend="cv2", scale=1.3, rot_deg=30.0)
    uv = camera.project(out["xyz_m"][None], out["K"])[0]  # the (mirrored) image's pixels
    uv_crop = camera.apply_affine(out["crop_from_image"], uv)
    uvd = authors.uvd_target(uv_crop, out["xyz_m"][:, 2], 64)[None].astype(np.float64)
    inputs = protocols.AuthorsInputs(variant="rhd", uv_argmax_crop=np.zeros((1, 21, 2)),
                                     crop_from_image=out["crop_from_image"][None], K_image=out["K"][None],
                                     input_size=64, image_from_crop=out["image_from_crop"][None])
    res = protocols.authors_uvd(uvd, out["xyz_m"][None], inputs, protocol="authors-gtcrops")
    assert res.protocol == "authors-gtcrops" and res.errors_mm.max() < 0.01
    a0 = camera.apply_affine(base["crop_from_image"], uv)
    d0, d1 = a0[12] - a0[0], uv_crop[12] - uv_crop[0]
    turn = np.degrees(np.arctan2(d1[1], d1[0]) - np.arctan2(d0[1], d0[0]))
    assert abs((turn + 30.0 + 180.0) % 360.0 - 180.0) < 0.01
    np.testing.assert_allclose(np.linalg.norm(d1) * 1.3, np.linalg.norm(d0), rtol=1e-5)


def test_bad_crop_options_are_one_line_errors():
    with pytest.raises(HcdgError, match="--scale: expected a finite number > 0"):
        eval_crops.check_options("cv2", float("nan"), 0.0)
    with pytest.raises(HcdgError, match="--rot: expected a finite number"):
        eval_crops.check_options("pil", 1.0, float("inf"))
    with pytest.raises(HcdgError, match="crop backend"):
        eval_crops.check_options("skimage", 1.0, 0.0)
    with pytest.raises(HcdgError, match="after truncation"):
        crop_cv2.box_affines([1.0, 1.0, 0.7, 5.0], 32)
    with pytest.raises(HcdgError, match="uint8"):
        crop_cv2.cut_crop(np.zeros((4, 4, 3), np.float32), np.eye(3), 4, flip=False)


@pytest.mark.parametrize("seed_boxes", [False, True])
def test_hcdg_protocols_under_test_time_rotation_roll_the_camera_and_undo_it(synth_rhd, seed_boxes):
    """--rot on hcdg's PIL crops: the crop turns like theirs (by -rot), the 3D is in the rolled camera,
    and eval un-rolls it: a prediction equal to the rolled ground truth scores ~0 under every xyz
    protocol and lands on the dataset's own ground truth; without the un-roll it does not."""
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.protocols import OUTPUT_PROTOCOLS
    from hcdg.stages import eval as ev

    reader = open_dataset("rhd", synth_rhd)
    cfg = CropConfig(input_size=64)
    items, base = [], []
    for i in range(3):
        s = reader[i]
        uv_m = s.uv if s.side == "right" else np.column_stack([320 - 1 - s.uv[:, 0], s.uv[:, 1]])
        box = np.array([*(uv_m.mean(0) - 60.2), 120.6, 120.6]) if seed_boxes else None
        kw = dict(backend="pil", box_xywh=box)
        items.append(eval_crops.eval_crop(s, cfg, scale=1.2, rot_deg=25.0, **kw))
        base.append(eval_crops.eval_crop(s, cfg, scale=1.2, rot_deg=0.0, **kw))
    it, b0 = items[0], base[0]
    uv0 = camera.project(b0["xyz_m"][None], b0["K"])[0]
    a0, a1 = camera.apply_affine(b0["crop_from_image"], uv0), camera.apply_affine(it["crop_from_image"], uv0)
    d0, d1 = a0[12] - a0[0], a1[12] - a1[0]
    turn = np.degrees(np.arctan2(d1[1], d1[0]) - np.arctan2(d0[1], d0[0]))
    assert abs((turn + 25.0 + 180.0) % 360.0 - 180.0) < 0.5  # a roll about the principal point: ~ -25 deg
    np.testing.assert_allclose(camera.project(it["xyz_m"][None], it["K_crop"])[0], a1, atol=1e-6)
    if seed_boxes:  # the box centre stays at the crop centre
        c = camera.apply_affine(camera.affine_inverse(b0["crop_from_image"]), np.array([31.5, 31.5]))
        np.testing.assert_allclose(camera.apply_affine(it["crop_from_image"], c), [31.5, 31.5], atol=1e-6)

    def stack(k):
        return np.stack([np.asarray(x[k]) for x in items])

    pred = {k: stack(k) for k in ("xyz_m", "K", "crop_from_image", "image_from_crop", "image_from_original",
                                  "rot_aug", "visible")}
    pred.update(mirrored=stack("mirrored").astype(bool), K_image=np.stack([reader[i].K for i in range(3)]),
                xyz_rel_norm=stack("xyz_rel_norm").astype(np.float64),
                uv_hm=np.stack([camera.crop_to_heatmap(x["uv_crop"], 64, 8) for x in items]),
                sample_id=[x["sample_id"] for x in items], gt_root=["wrist"] * 3)
    results, _ = ev.evaluate_predictions(pred, cfg, OUTPUT_PROTOCOLS["xyz"], "rhd")
    for r in results:
        assert r.errors_mm.max() < 1e-3, (r.protocol, r.root, r.errors_mm.max())
    gt = np.stack([reader[i].xyz for i in range(3)])
    rr = next(r for r in results if r.protocol == "2.5d-gtroot-gtbone")
    np.testing.assert_allclose(rr.pred_xyz_m, gt, atol=1e-6)  # back in RHD's own camera frame
    no_unroll = {k: v for k, v in pred.items() if k != "rot_aug"}
    results, _ = ev.evaluate_predictions(no_unroll, cfg, ("2.5d-gtroot-gtbone",), "rhd")
    assert results[0].errors_mm.mean() > 1.0


def test_per_axis_summary_is_their_epe_detailed():
    """Summary x / y / z means == their main/metrics.py epe_detailed loop, averaged over samples."""
    import math

    from hcdg.store import results as rs

    rng = np.random.default_rng(3)
    gt = rng.normal(0, 0.05, (6, 21, 3)) + [0, 0, 0.8]
    pred = gt + rng.normal(0, 0.01, gt.shape)
    err = np.linalg.norm(pred - gt, axis=-1) * 1000
    res = protocols.ProtocolResult("authors", "wrist", pred, gt, err)
    frame = rs.results_frame(run="r", target="rhd", split="evaluation", sample_ids=[str(i) for i in range(6)],
                             results=[res])
    row = rs.summarise_results(frame).query("joints == 'all'").iloc[0]
    x_epe = y_epe = z_epe = epe = 0.0
    for g, o in zip(gt * 1000, pred * 1000):  # their loop, per sample
        xs = ys = zs = e = 0.0
        for j in range(21):
            dx, dy, dz = ((g[j][k] - o[j][k]) ** 2 for k in range(3))
            xs += math.sqrt(dx) / 21
            ys += math.sqrt(dy) / 21
            zs += math.sqrt(dz) / 21
            e += math.sqrt(dx + dy + dz) / 21
        x_epe, y_epe, z_epe, epe = x_epe + xs, y_epe + ys, z_epe + zs, epe + e
    n = len(gt)
    assert row["epe_mean_mm"] == pytest.approx(epe / n, abs=1e-9)
    # pred / gt are stored as float32 metres: ~1e-4 mm of round-off
    for col, want in zip(rs.AXIS_COLUMNS, (x_epe / n, y_epe / n, z_epe / n)):
        assert row[col] == pytest.approx(want, abs=1e-3)
    assert len({round(row[c], 3) for c in rs.AXIS_COLUMNS}) == 3


class _FakeRhd:
    dataset, split = "rhd", "evaluation"

    def __len__(self) -> int:
        return 2728

    def sample_id(self, i: int) -> str:
        return f"{i:05d}"


def test_rhd_under_their_protocol_always_drops_their_three_files(tmp_path):
    from hcdg.stages import eval as ev

    gone = {162, 359, 1488}
    idx, boxes, note = ev.select_samples(_FakeRhd(), ev.EvalConfig(run="r", target="rhd", root="x",
                                                                   protocols=("authors-gtcrops",)))
    assert len(idx) == 2725 and gone.isdisjoint(idx) and boxes is None and "00359" in note
    # a box file with a row per image: the dropped images' rows go with them
    path = tmp_path / "all.npy"
    np.save(path, np.column_stack([np.arange(2728.0), np.ones(2728), np.full(2728, 50.0), np.full(2728, 50.0)]))
    cfg = ev.EvalConfig(run="r", target="rhd", root="x", crops="seed-boxes", boxes=str(path), protocols=("authors",))
    idx, boxes, _ = ev.select_samples(_FakeRhd(), cfg)
    np.testing.assert_array_equal(boxes[:, 0], idx)  # row i still belongs to image i
    # hcdg's protocols on GT boxes keep every image
    idx, _, note = ev.select_samples(_FakeRhd(), ev.EvalConfig(run="r", target="rhd", root="x", protocols=("pa",)))
    assert len(idx) == 2728 and note == ""


def test_eval_refuses_bad_scale_and_rot_in_one_line(tmp_path):
    from click.testing import CliRunner

    from hcdg.cli import main

    for flag, value, needle in (("--scale", "0", "--scale: expected a finite number > 0"),
                                ("--scale", "nan", "--scale: expected a finite number"),
                                ("--rot", "inf", "--rot: expected a finite number")):
        res = CliRunner().invoke(main, ["eval", "--run", str(tmp_path / "run"), "--target", "stb", "--root",
                                        str(tmp_path), flag, value, "--no-progress"])
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code != 0 and len(lines) == 1 and needle in lines[0], res.output
    assert not (tmp_path / "run").exists()
