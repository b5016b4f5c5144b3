"""`--augment-on device`: the batched torch crop / jitter / heatmaps equal the worker path's."""

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import default_collate

from hcdg.cli import main
from hcdg.pipeline.datasets import open_dataset
from hcdg.pipeline.device_aug import render_batch, warp_crops
from hcdg.pipeline.train_data import AugmentedSamples, ColorJitter
from hcdg.pipeline.transforms import CropConfig, GeomAug

KEYS = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (2, 5)]


def _both(reader, crop, geom, color, keys=KEYS):
    keys = [(e, i % len(reader)) for e, i in keys]
    on = {m: AugmentedSamples(reader, crop, geom, color, seed=7, augment_on=m) for m in ("workers", "device")}
    return (default_collate([on["workers"][k] for k in keys]), default_collate([on["device"][k] for k in keys]))


def _interior(batch, size):
    """(B, S, S) bool: crop pixels whose bilinear footprint lies 1 px inside the image."""
    n, h, w, _ = batch["image_u8"].shape
    g = torch.arange(size, dtype=torch.float32)
    v, u = torch.meshgrid(g, g, indexing="ij")
    p = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    q = torch.einsum("bij,pj->bpi", batch["image_from_crop"], p).reshape(n, size, size, 3)
    return (q[..., 0] >= 1) & (q[..., 0] <= w - 2) & (q[..., 1] >= 1) & (q[..., 1] <= h - 2)


@pytest.mark.parametrize("dataset", ["freihand", "rhd"])  # rhd: left hands (the mirror is in the warp)
def test_device_path_equals_the_worker_path(dataset, synth_freihand, synth_rhd):
    root = synth_freihand if dataset == "freihand" else synth_rhd
    reader = open_dataset(dataset, str(root), "training")
    crop = CropConfig(input_size=64)
    ref, dev = _both(reader, crop, GeomAug(), ColorJitter())
    assert "image" not in dev and "heatmaps" not in dev and dev["image_u8"].dtype == torch.uint8
    # the same random draws: targets that do not depend on the pixels are identical
    for k in ("uv_crop", "xyz_rel_norm", "pose_target", "bone_scale_m", "root_xyz_m", "K_crop", "visible",
              "feat_row", "index"):
        assert torch.equal(ref[k], dev[k]), k
    out = render_batch(dev, crop, color=True)
    assert out["image"].shape == ref["image"].shape and out["heatmaps"].shape == ref["heatmaps"].shape
    assert (out["heatmaps"] - ref["heatmaps"]).abs().max() < 1e-5
    inside = _interior(dev, crop.input_size)[:, None].expand_as(out["image"])
    diff = (out["image"] - ref["image"]).abs()
    # measured (64 and 256 px): interior mean 0.43-0.49/255, max 1.15/255 -- the worker path rounds
    # its crop to uint8 (PIL), the device path does not; the sampling positions are the same
    assert inside.float().mean() > 0.3
    assert diff[inside].mean() < 1 / 255 and diff[inside].max() < 2 / 255, diff[inside].max() * 255


def test_warp_is_exact_for_a_pixel_shift_and_zero_outside():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 20, 30, 3), dtype=np.uint8))
    shift = torch.tensor([[[1.0, 0.0, 5.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]])  # crop (0,0) = image (5,3)
    out = warp_crops(img, shift, 8)[0] * 255
    assert torch.allclose(out, img[0, 3:11, 5:13].permute(2, 0, 1).float(), atol=1e-3)
    far = shift.clone()
    far[0, 0, 2] = 100.0
    assert warp_crops(img, far, 8).abs().max() == 0


def test_no_colour_jitter_and_no_augmentation(synth_freihand):
    reader = open_dataset("freihand", str(synth_freihand), "training")
    crop = CropConfig(input_size=64)
    ref, dev = _both(reader, crop, None, None, keys=KEYS[:3])
    assert torch.equal(dev["color_bcs"], torch.ones(3, 3))
    out = render_batch(dev, crop, color=False)
    assert (out["image"] - ref["image"]).abs().mean() < 2 / 255
    assert (out["heatmaps"] - ref["heatmaps"]).abs().max() < 1e-5


def test_train_augment_on_device_end_to_end(synth_freihand, synth_freihand_store, tmp_path):
    flags = ["--root", synth_freihand, "--out", tmp_path / "run", "--width-mult", 0.25, "--input-size", 64,
             "--batch-size", 4, "--workers", 0, "--no-progress", "--val-fraction", 0.2, "--store",
             synth_freihand_store, "--mode", "ie+te", "--steps", 3, "--log-every", 1, "--augment-on", "device"]
    res = CliRunner().invoke(main, ["train", *map(str, flags)])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    tr = df[df.kind == "train"]
    assert len(tr) == 3 and np.isfinite(tr["loss"]).all() and (tr["loss_heat"] > 0).all()
    bad = CliRunner().invoke(main, ["train", *map(str, flags[:-1]), "gpu"])
    assert bad.exit_code != 0 and "--augment-on" in bad.output


def test_shared_sweep_on_device_renders_once_and_equals_solo_runs(synth_freihand, synth_freihand_store, tmp_path,
                                                                  monkeypatch):
    from hcdg.pipeline import device_aug
    from hcdg.stages import train
    from hcdg.store.checkpoints import load_model_state

    calls = []
    real = device_aug.render_batch
    monkeypatch.setattr(device_aug, "render_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    small = ["--steps", 3, "--width-mult", 0.125, "--input-size", 32, "--batch-size", 4, "--workers", 0,
             "--no-progress", "--val-fraction", 0.2, "--log-every", 1, "--augment-on", "device"]
    out = tmp_path / "sw"
    res = CliRunner().invoke(main, [str(a) for a in ["sweep", "--shared-batches", "--store", synth_freihand_store,
                                                     "--root", synth_freihand, "--out", out, *small,
                                                     "--mode", "ie+te", "--ratio", "0.4,0.9"]])
    assert res.exit_code == 0, res.output
    assert len(calls) == 3  # one render per batch, shared by both points
    solo = tmp_path / "solo"
    train.run(train.TrainConfig(store=str(synth_freihand_store), root=str(synth_freihand), out=str(solo), steps=3,
                                width_mult=0.125, input_size=32, batch_size=4, workers=0, progress=False,
                                val_fraction=0.2, log_every=1, mode="ie+te", ratio=0.9, augment_on="device"))
    drop = ["samples_per_s", "wall_s"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "mode=ie+te,ratio=0.9" / "metrics.parquet").drop(columns=drop),
                                  pd.read_parquet(solo / "metrics.parquet").drop(columns=drop), check_exact=True)
    wa, _ = load_model_state(out / "mode=ie+te,ratio=0.9")
    wb, _ = load_model_state(solo)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
