"""Synthetic datasets in the real layouts: read back by the real readers, deterministic, styled."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hcdg.cli import main
from hcdg.pipeline import joints as J
from hcdg.pipeline.camera import project
from hcdg.pipeline.datasets import open_dataset
from hcdg.pipeline.datasets.common import decode_label_image
from hcdg.pipeline.hands import bone_scale, stb_palm_to_wrist
from hcdg.pipeline.synth import render as R
from hcdg.pipeline.synth import writers as W
from hcdg.stages import synth as stage


def _sidecar(root: Path) -> dict:
    return json.loads((root / W.SIDECAR).read_text())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt,n,n_other", [("freihand", 2, 1), ("rhd", 2, 1), ("stb", 1, 0)])
def test_same_seed_same_bytes(tmp_path, fmt, n, n_other):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    W.write_dataset(fmt, a, n, n_other, seed=7)
    W.write_dataset(fmt, b, n, n_other, seed=7)
    W.write_dataset(fmt, c, n, n_other, seed=8)
    ta, tb, tc = _tree(a), _tree(b), _tree(c)
    assert ta == tb
    assert ta.keys() == tc.keys()
    assert all(ta[k] != tc[k] for k in ta if not k.endswith(".png") or "mask" not in k)


def test_freihand_round_trip(synth_freihand):
    info = _sidecar(synth_freihand)
    n = info["counts"]["training_poses"]
    plan = W.plan_poses(info["seed"], "freihand", "training", n)
    ds = open_dataset("freihand", synth_freihand, "training")
    assert len(ds) == 4 * n
    for i in range(len(ds)):
        s = ds.annotation(i)
        np.testing.assert_allclose(s.xyz, plan.xyz[i % n], atol=1e-6, rtol=0)
        np.testing.assert_allclose(s.K, plan.K[i % n], atol=1e-9, rtol=0)
        assert np.abs(s.uv - project(plan.xyz[i % n], plan.K[i % n])).max() < 0.5
        assert (s.uv > 0).all() and (s.uv < 223).all()
        assert s.extra["version"] == i // n and s.extra["style"]["version"] == i // n
        assert s.extra["scale_m"] == pytest.approx(bone_scale(s.xyz), abs=1e-9)
        assert s.side == "right" and s.root == "wrist"
    styles = [ds.annotation(i).extra["style"] for i in range(len(ds))]
    assert {st["colour"] for st in styles[:n]} == {"green screen"}
    assert {st["colour"] for st in styles[n:]} <= {"indoor clutter", "plain wall"}
    assert {st["domain"] for st in styles} == {"source"}
    # Image borders are mostly background: green for version 0, muted for versions 1-3.
    def border(i):
        img = ds[i].image / 255.0
        assert img.shape == (224, 224, 3)
        return np.concatenate([img[:4].reshape(-1, 3), img[-4:].reshape(-1, 3),
                               img[:, :4].reshape(-1, 3), img[:, -4:].reshape(-1, 3)])

    green = np.median(np.concatenate([border(i) for i in range(n)]), axis=0)
    assert green[1] > green[0] + 0.15 and green[1] > green[2] + 0.15
    other = np.median(np.concatenate([border(i) for i in range(n, 4 * n)]), axis=0)
    assert other[1] < max(other[0], other[2]) + 0.1
    ev = open_dataset("freihand", synth_freihand, "evaluation")
    plan_ev = W.plan_poses(info["seed"], "freihand", "evaluation", info["counts"]["evaluation_poses"])
    assert len(ev) == len(plan_ev.xyz)
    np.testing.assert_allclose(np.stack([ev.annotation(i).xyz for i in range(len(ev))]), plan_ev.xyz, atol=1e-6)


def _hand_labels(side: str) -> tuple[int, int]:
    return (2, 17) if side == "left" else (18, 33)


def test_rhd_round_trip(synth_rhd):
    info = _sidecar(synth_rhd)
    n = info["counts"]["evaluation"]
    plan = W.plan_poses(info["seed"], "rhd", "evaluation", n)
    ds = open_dataset("rhd", synth_rhd, "evaluation")
    assert len(ds) == n and len(set(plan.side)) == 2  # both sides occur (8 images)
    n_visible = 0
    for i in range(n):
        s = ds.annotation(i)
        assert s.side == plan.side[i]  # the "more mask pixels" rule picks the rendered hand
        np.testing.assert_allclose(s.xyz, plan.xyz[i], atol=1e-6, rtol=0)
        np.testing.assert_allclose(s.K, plan.K[i], atol=1e-4, rtol=0)
        assert np.abs(s.uv - project(s.xyz, s.K)).max() < 0.5
        rec = info["images"][f"evaluation/color/{i:05d}.png"]
        np.testing.assert_array_equal(s.visible, rec["visible"])
        assert s.extra["style"]["domain"] == "target"
        # visible joints have skin pixels (this hand's labels, or the forearm's 1 at the wrist)
        # at their uv; the depth map agrees with the flags
        mask = decode_label_image(ds.mask_path(i))
        lo, hi = _hand_labels(s.side)
        col, row = np.rint(s.uv).astype(int).T
        for j in np.flatnonzero(s.visible):
            patch = mask[max(row[j] - 1, 0):row[j] + 2, max(col[j] - 1, 0):col[j] + 2]
            ok = (patch >= lo) & (patch <= hi)
            assert ok.any() or (j == J.WRIST and (patch == 1).any())
        n_visible += s.visible.sum()
        other = ds.root / f"evaluation/mask/{i:05d}.png"
        olo, ohi = _hand_labels("left" if s.side == "right" else "right")
        assert not ((mask >= olo) & (mask <= ohi)).any() and other.is_file()
        depth_png = np.asarray(Image.open(ds.root / f"evaluation/depth/{i:05d}.png"))
        depth = (depth_png[..., 0].astype(np.float64) * 256 + depth_png[..., 1]) / 65535 * 5.0
        inside = (col >= 0) & (col < 320) & (row >= 0) & (row < 320)
        assert inside.all()
        radii = R.joint_radii(float(plan.size[i]))
        front = depth[row, col] >= s.xyz[:, 2] - radii - R.VISIBLE_TOL_M - 1e-4
        np.testing.assert_array_equal(front, s.visible)
    assert n_visible > 0.4 * 21 * n
    # The other hand's slot: a hand outside the view, visibility 0.
    for i in range(n):
        other_side = "left" if plan.side[i] == "right" else "right"
        o = open_dataset("rhd", synth_rhd, "evaluation", hand=other_side).annotation(i)
        np.testing.assert_allclose(o.xyz, plan.other_xyz[i], atol=1e-6, rtol=0)
        assert not o.visible.any() and ((o.uv[:, 0] < 0) | (o.uv[:, 0] > 319)).all()
    tr = open_dataset("rhd", synth_rhd, "training")
    assert len(tr) == info["counts"]["training"] and tr[0].image.shape == (320, 320, 3)


def test_stb_round_trip(synth_stb):
    info = _sidecar(synth_stb)
    n = info["counts"]["frames_per_sequence"]
    ds = open_dataset("stb", synth_stb, "test", cameras=("BB_left", "BB_right"))
    assert len(ds) == 2 * 2 * n
    k = 0
    for seq in W.STB_SEQUENCES:
        plan = W.plan_poses(info["seed"], "stb", seq, n)
        palm = W.stb_palm_xyz(plan.xyz)
        for cam, shift in (("BB_left", 0.0), ("BB_right", W.STB_BASELINE_M)):
            for f in range(n):
                s = ds.annotation(k)
                k += 1
                assert s.sample_id == f"{seq}/{cam}_{f}" and s.side == "left" and s.root == "palm"
                want = palm[f] - np.array([shift, 0.0, 0.0])
                np.testing.assert_allclose(s.xyz, want, atol=1e-6, rtol=0)
                # the palm -> wrist convention gives back the generated wrist
                np.testing.assert_allclose(stb_palm_to_wrist(s.xyz)[0] + [shift, 0, 0], plan.xyz[f, 0], atol=1e-6)
                np.testing.assert_allclose(s.K, np.array(W.STB_K), atol=1e-9)
                assert np.abs(s.uv - project(want, s.K)).max() < 0.5
                assert (s.uv[:, 0] > 0).all() and (s.uv[:, 0] < 639).all()
                assert (s.uv[:, 1] > 0).all() and (s.uv[:, 1] < 479).all()
                assert "style" in s.extra
    s = ds[0]
    assert s.image.shape == (480, 640, 3)
    # millimetres on disk, in the palm-first STB order
    import scipy.io

    para = scipy.io.loadmat(synth_stb / "labels" / "B1Counting_BB.mat")["handPara"]
    assert para.shape == (3, 21, n)
    plan = W.plan_poses(info["seed"], "stb", "B1Counting", n)
    np.testing.assert_allclose(para[:, 1 + 3, :].T / 1000.0, plan.xyz[:, J.MCP["pinky"] + 3], atol=1e-9)  # pinky tip


def _mean_colours(root: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean RGB (0..1) of background pixels and of hand pixels over the RHD evaluation images."""
    ds = open_dataset("rhd", root, "evaluation")
    bg, hand = [], []
    for i in range(n):
        img = ds[i].image.reshape(-1, 3) / 255.0
        mask = decode_label_image(ds.mask_path(i)).reshape(-1)
        bg.append(img[mask == 0])
        hand.append(img[mask >= 2])
    return np.concatenate(bg).mean(0), np.concatenate(hand).mean(0)


def test_two_styles_differ_in_image_statistics(tmp_path):
    W.write_rhd(tmp_path / "a", 3, 1, seed=1, style="white:red:background")
    W.write_rhd(tmp_path / "b", 3, 1, seed=1, style="black:blue:background")
    bg_a, hand_a = _mean_colours(tmp_path / "a", 3)
    bg_b, hand_b = _mean_colours(tmp_path / "b", 3)
    assert bg_a[0] > bg_a[2] + 0.3 and bg_b[2] > bg_b[0] + 0.3  # red vs blue backgrounds
    assert hand_a.mean() > hand_b.mean() + 0.3  # white vs black hands
    info = _sidecar(tmp_path / "a")
    assert {r["style"]["prompt"] for r in info["images"].values()} == {"white hand with red background"}


def test_cli_synth_writes_atomically_and_is_idempotent(tmp_path):
    runner = CliRunner()
    out = tmp_path / "data" / "rhd"
    args = ["synth", "--format", "rhd", "--out", str(out), "--n", "2", "--n-other", "1", "--seed", "3",
            "--style", "peach:*", "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "wrote 3 rhd images" in res.output
    assert open_dataset("rhd", out).annotation(0).extra["style"]["hand_colour"] == "peach"
    before = _tree(out)
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "nothing to do" in res.output
    assert _tree(out) == before
    res = runner.invoke(main, args[:-3] + ["--seed", "4", "--no-progress"])
    assert res.exit_code == 1 and "use --overwrite" in res.output and len(res.output.strip().splitlines()) == 1
    assert _tree(out) == before
    res = runner.invoke(main, args[:-3] + ["--seed", "4", "--no-progress", "--overwrite"])
    assert res.exit_code == 0 and _tree(out) != before
    assert sorted(p.name for p in out.parent.iterdir()) == ["rhd"]  # no temp folders left behind
    for bad, msg in ((["--n", "0"], "--n 0"), (["--style", "plaid"], "--style"), (["--seed", "-1"], "--seed")):
        res = runner.invoke(main, ["synth", "--format", "freihand", "--out", str(tmp_path / "x"), *bad])
        assert res.exit_code == 1 and msg in res.output, res.output
    assert not (tmp_path / "x").exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "fh"
    real = W.write_dataset

    def crash(fmt, root, *args, **kwargs):
        real(fmt, root, *args, **kwargs)
        raise KeyboardInterrupt  # killed after writing everything but before the rename

    monkeypatch.setattr(W, "write_dataset", crash)
    with pytest.raises(KeyboardInterrupt):
        stage.run(stage.SynthConfig(format="freihand", out=str(out), n=1, n_other=1), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_views_flag_is_recorded_and_validated(tmp_path):
    import json

    from click.testing import CliRunner

    from hcdg.cli import main

    runner = CliRunner()
    out = tmp_path / "f"
    args = ["synth", "--format", "freihand", "--out", str(out), "--n", "2", "--n-other", "1", "--no-progress"]
    assert runner.invoke(main, [*args, "--views", "dorsal"]).exit_code == 0
    assert json.loads((out / "hcdg_synth.json").read_text())["views"] == "dorsal"
    # Same arguments but other views: a different dataset, refused without --overwrite.
    res = runner.invoke(main, [*args, "--views", "any"])
    assert res.exit_code != 0 and "--overwrite" in res.output
    bad = runner.invoke(main, [*args, "--views", "sideways", "--overwrite"])
    assert bad.exit_code != 0 and "--views 'sideways'" in bad.output.strip().splitlines()[-1]
