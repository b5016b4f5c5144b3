"""`hcdg train` learns at the defaults users run: only the size and the length are reduced.

No learning-rate, loss-weight or loss-form override, no easy views: Adam 1e-4 and lambda
1 / 1 / 0.1 (paper §3.4) with hcdg's default L_heat / L_pose / L_con readings, on synthetic
FreiHAND-format hands with uniformly random orientations (`hcdg synth`'s default). The
benchmark with more steps and seeds is benchmarks/bench_learning.py (docs/benchmarks.md,
"learning"). On the defaults of hcdg before 2026-12 (Eq. 4 as printed, element-mean L_heat)
the ie+te run fails every assertion below: L_con falls without bound, the embeddings
inflate and the held-out EPE stays at the mean-pose level.
"""

import pandas as pd
import pytest

from hcdg.stages import train

#: 64 px crops, width 0.25, batch 16: the benchmark's size (docs/benchmarks.md "learning").
SMALL = {"input_size": 64, "width_mult": 0.25, "batch_size": 16}
STEPS = 1000


@pytest.fixture(scope="module")
def uniform_freihand(tmp_path_factory):
    """160 synthetic FreiHAND poses (640 images), uniformly random views, and a tiny-CLIP store."""
    from hcdg.stages import embed
    from hcdg.stages.synth import SynthConfig
    from hcdg.stages.synth import run as synth_run

    base = tmp_path_factory.mktemp("learnable")
    root, store = base / "freihand", base / "store.zarr"
    synth_run(SynthConfig(format="freihand", out=str(root), n=160, n_other=4, seed=0), progress=False)
    embed.run(embed.EmbedConfig(dataset="freihand", root=str(root), store=str(store), model="hcdg-tiny",
                                device="cpu", workers=0, progress=False))
    return root, store


def _train(root, store, out, mode):
    cfg = train.TrainConfig(
        root=str(root), store=str(store) if mode != "baseline" else None, out=str(out), mode=mode, steps=STEPS,
        workers=0, progress=False, log_every=50, val_every=STEPS, val_fraction=0.1, checkpoint_every=10_000,
        **SMALL,
    )  # fmt: skip
    for name in ("lr", "lambda_heat", "lambda_pose", "lambda_con", "con_loss", "heat_reduction", "pose_reduction"):
        assert getattr(cfg, name) == getattr(train.TrainConfig(), name), f"{name} must stay at its default"
    done = train.run(cfg)
    return done, pd.read_parquet(out / "metrics.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["baseline", "ie+te"])
def test_defaults_learn_pose_and_heatmaps_on_uniform_views(uniform_freihand, tmp_path, mode):
    root, store = uniform_freihand
    done, metrics = _train(root, store, tmp_path / mode, mode)
    epe, floor = done["val_epe_mm"], done["val_mean_pose_epe_mm"]
    err2d, floor2d = done["val_2d_px"], done["val_mean_2d_px"]
    print(f"{mode}: EPE {epe:.1f} mm vs mean pose {floor:.1f} mm ({epe / floor:.3f}); "
          f"2D {err2d:.2f} px vs mean layout {floor2d:.2f} px ({err2d / floor2d:.3f})")
    assert done["n_val"] == 4 * 16 and floor > 60.0
    assert epe < 0.9 * floor, f"held-out EPE {epe:.1f} mm vs mean-pose EPE {floor:.1f} mm (need < 0.9x)"
    assert err2d < 1.1 * floor2d, f"2D error {err2d:.2f} px vs the mean layout's {floor2d:.2f} px: heatmaps never formed"
    if mode == "ie+te":
        rows = metrics[metrics["kind"] == "train"]
        assert rows["loss_con"].min() >= 0.0, "L_con must stay bounded below"
        norms = rows["e1_norm"].dropna()
        assert norms.iloc[-1] < 5 * norms.iloc[0], f"e1' inflated from {norms.iloc[0]:.2f} to {norms.iloc[-1]:.2f}"
