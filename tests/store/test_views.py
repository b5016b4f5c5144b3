"""`hcdg embed --views K` and training on its views: the crop CLIP saw is the crop the network sees."""

import numpy as np
import pandas as pd
import pytest
import torch

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.transforms import GeomAug
from hcdg.pipeline.views import clip_pixels, draw_view, render_view
from hcdg.stages import train
from hcdg.stages.embed import EmbedConfig
from hcdg.stages.embed import run as embed_run
from hcdg.stages.train_loop import STOP_ENV, open_data
from hcdg.store import features as fs
from hcdg.store.features import StoreReader, split_node

K = 3
#: The training size of these tests (tests/test_train.py's TINY).
TINY = dict(width_mult=0.25, input_size=64, batch_size=4, workers=0, progress=False, val_fraction=0.2)
EMBED = dict(dataset="freihand", model="hcdg-tiny", workers=0, device="cpu", prompt_filter="^one ", progress=False,
             batch_size=8, chunk_rows=16, views=K)


@pytest.fixture(scope="module")
def view_toml(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewcfg") / "train.toml"
    path.write_text("input_size = 64\n")
    return path


@pytest.fixture(scope="module")
def view_store(synth_freihand, view_toml, tmp_path_factory):
    store = tmp_path_factory.mktemp("views") / "views.zarr"
    s = embed_run(EmbedConfig(root=str(synth_freihand), store=str(store), view_config=str(view_toml), **EMBED))
    assert s.rows == 48 * K and s.complete_rows == 48 * K
    return store


def _cfg(root, out, store, **kw):
    return train.TrainConfig(root=str(root), out=str(out), store=str(store), **{**TINY, **kw})


def test_view_crop_is_the_training_input_bit_for_bit(synth_freihand, view_store, tmp_path):
    from hcdg.pipeline.clip import TINY_MODEL, ClipEncoder
    from hcdg.store.clip_weights import resolve_weights
    from hcdg.pipeline.train_data import AugmentedSamples

    cfg = _cfg(synth_freihand, tmp_path / "r", view_store, mode="ie+te")
    data = open_data(cfg, torch.device("cpu"))
    assert data.views.shape == (48, K, 7)
    crop = cfg.crop_config()
    ds = AugmentedSamples(data.reader, crop, cfg.geom, cfg.color, cfg.seed, data.feature_rows, views=data.views)
    with StoreReader(view_store) as reader:
        stored_params = reader.read(f"{split_node(cfg.split_key)}/view_params")
    enc = ClipEncoder(resolve_weights(TINY_MODEL, "none"))
    pp = enc.model.visual.preprocess_cfg
    seen = set()
    for epoch, index in [(0, 0), (0, 5), (1, 5), (2, 17), (3, 30), (4, 47)]:
        item = ds[(epoch, index)]
        row = int(item["feat_row"])
        view = row - int(data.feature_rows[index])
        assert 0 <= view < K
        seen.add(view)
        # The row's stored parameters are the embed-time draw, and training replays them.
        assert np.array_equal(stored_params[row], draw_view(cfg.geom, cfg.color, 0, index, view))
        assert np.array_equal(data.views[index, view], stored_params[row])
        # Rendered the embed way from the stored row == the network's input, byte for byte.
        crop_embed = render_view(data.reader[index], crop, stored_params[row])
        assert np.array_equal(crop_embed, item["image"].numpy())
        # ... and the row's feature is CLIP on exactly that crop (stored float16).
        feat = enc.encode_images(clip_pixels(torch.from_numpy(crop_embed)[None], enc.image_size, pp["mean"],
                                             pp["std"]))[0]
        table = data.img_table[row].float()
        assert torch.allclose(table, feat, rtol=2e-3, atol=2e-3)
        # a different view of the same image is a different crop
        other = render_view(data.reader[index], crop, stored_params[int(data.feature_rows[index]) + (view + 1) % K])
        assert not np.array_equal(other, crop_embed)
    assert len(seen) > 1  # the draw picks among the views


def _forbid(*args, **kwargs):
    raise AssertionError("training must not build or run a CLIP model")


def test_training_on_views_runs_no_clip(synth_freihand, view_store, tmp_path, monkeypatch):
    import open_clip

    from hcdg.pipeline import clip as hcdg_clip
    from hcdg.store import clip_weights

    for name in ("create_model", "create_model_and_transforms", "create_model_from_pretrained"):
        monkeypatch.setattr(open_clip, name, _forbid)
    monkeypatch.setattr(hcdg_clip.ClipEncoder, "__init__", _forbid)
    monkeypatch.setattr(clip_weights, "load_encoder", _forbid)
    done = train.run(_cfg(synth_freihand, tmp_path / "run", view_store, steps=3, mode="ie+te", log_every=1))
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert done["total_steps"] == 3 and (df[df.kind == "train"]["loss_con"] != 0).all()


def test_other_augmentation_is_refused_naming_the_difference(synth_freihand, view_store, tmp_path):
    with pytest.raises(HcdgError, match=r"geom\.rotation_deg: store has 30\.0, this run has 10\.0"):
        open_data(_cfg(synth_freihand, tmp_path / "a", view_store, geom=GeomAug(rotation_deg=10.0)),
                  torch.device("cpu"))
    with pytest.raises(HcdgError, match="input_size: store has 64, this run has 128"):
        open_data(_cfg(synth_freihand, tmp_path / "b", view_store, input_size=128), torch.device("cpu"))
    with pytest.raises(HcdgError, match="no-augment"):
        open_data(_cfg(synth_freihand, tmp_path / "c", view_store, augment=False), torch.device("cpu"))


def test_sharded_embed_equals_one_run_and_params_are_checksummed(synth_freihand, view_store, view_toml, tmp_path):
    store = tmp_path / "sharded.zarr"
    for shard in ("1/2", "0/2"):
        embed_run(EmbedConfig(root=str(synth_freihand), store=str(store), view_config=str(view_toml), shard=shard,
                              **EMBED))
    node = split_node("freihand/training")
    with StoreReader(view_store) as a, StoreReader(store) as b:
        for name in ("feats", "view_params", "view_sums", "ids"):
            assert np.array_equal(a.read(f"{node}/{name}"), b.read(f"{node}/{name}")), name
    # A damaged parameter chunk is refused by training's loader.
    import zarr

    g = zarr.open_group(str(store), mode="r+")[node]
    p = g["view_params"][:]
    p[20, 1] += 1.0
    g["view_params"][:] = p
    from hcdg.store.views import load_params

    with pytest.raises(HcdgError, match=r"view_params chunk 1 \(rows 16-31\) does not match its checksum"):
        load_params(store, "freihand/training", K)
    info = {s["key"]: s for s in fs.store_info(store)["splits"]}["freihand/training"]
    assert info["damaged"] and "view_params chunk 1" in info["integrity"]["problems"][0]


def test_embed_refuses_bad_views_before_writing(synth_freihand, tmp_path):
    store = tmp_path / "bad.zarr"
    with pytest.raises(HcdgError, match="--views -1"):
        embed_run(EmbedConfig(root=str(synth_freihand), store=str(store), **{**EMBED, "views": -1}))
    with pytest.raises(HcdgError, match="--view-config"):
        embed_run(EmbedConfig(root=str(synth_freihand), store=str(store), view_config=str(tmp_path / "no.toml"),
                              **EMBED))
    assert not store.exists()


def test_killed_and_resumed_run_on_views_reproduces_the_uninterrupted_run(synth_freihand, view_store, tmp_path,
                                                                         monkeypatch):
    kw = dict(steps=6, checkpoint_every=2, log_every=1, val_every=3, mode="ie+te", ratio=0.6)
    train.run(_cfg(synth_freihand, tmp_path / "full", view_store, **kw))
    cut = _cfg(synth_freihand, tmp_path / "cut", view_store, **kw)
    monkeypatch.setenv(STOP_ENV, "5")
    with pytest.raises(SystemExit):
        train.run(cut)
    monkeypatch.delenv(STOP_ENV)
    train.run(train.replace(cut, resume=True))
    cols = ["kind", "step", "loss", "loss_heat", "loss_pose", "loss_con", "val_epe_mm"]
    a = pd.read_parquet(tmp_path / "full" / "metrics.parquet")[cols]
    b = pd.read_parquet(tmp_path / "cut" / "metrics.parquet")[cols]
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert fs.read_fingerprint(view_store)["splits"]["freihand/training"]["views"]["k"] == K


def test_device_augmentation_replays_the_same_view(synth_freihand, view_store, tmp_path):
    """--augment-on device: the same view and feature row, pixels equal up to resampling (grid_sample vs PIL)."""
    from hcdg.pipeline.device_aug import render_batch
    from hcdg.pipeline.train_data import AugmentedSamples

    cfg = _cfg(synth_freihand, tmp_path / "r", view_store, mode="ie+te")
    data = open_data(cfg, torch.device("cpu"))
    crop = cfg.crop_config()
    args = (data.reader, crop, cfg.geom, cfg.color, cfg.seed, data.feature_rows)
    cpu = AugmentedSamples(*args, views=data.views)
    dev = AugmentedSamples(*args, views=data.views, augment_on="device")
    a, b = cpu[(1, 9)], dev[(1, 9)]
    assert int(a["feat_row"]) == int(b["feat_row"])
    batch = {k: v[None] for k, v in b.items()}
    img = render_batch(batch, crop, color=True)["image"][0]
    assert (img - a["image"]).abs().mean() < 0.02


def test_store_verify_re_renders_views(view_store, synth_freihand):
    from hcdg.stages.store_cmds import VerifyConfig, verify

    report = verify(VerifyConfig(store=str(view_store), sample=4))
    assert report["ok"], report
    split = next(t for t in report["tables"] if t["table"] == "freihand/training")
    assert split["ok"]


def test_authors_preset_views_match_an_authors_run_and_not_a_paper_run(synth_freihand, tmp_path):
    from hcdg.stages.embed import view_setup
    from hcdg.stages.train_views import check_views

    fp = view_setup(EmbedConfig(root="x", store="y", **{**EMBED, "view_preset": "authors"})).fingerprint()
    authors = train.TrainConfig.resolve("authors", root=str(synth_freihand), out=str(tmp_path / "a"))
    assert check_views(authors, "views.zarr", fp) == K
    paper = train.TrainConfig.resolve("paper", root=str(synth_freihand), out=str(tmp_path / "p"))
    with pytest.raises(HcdgError, match=r"geom\.rotation_deg: store has 90\.0, this run has 30\.0"):
        check_views(paper, "views.zarr", fp)


def test_shared_batches_group_only_runs_replaying_the_same_views():
    from hcdg.stages.train_shared import same_views

    a = np.zeros((4, 2, 7), np.float32)
    assert same_views(None, None) and same_views(a, a.copy())
    assert not same_views(a, None) and not same_views(None, a) and not same_views(a, a + 1)


def test_cli_embed_views_then_summary_names_the_views(synth_freihand, view_toml, tmp_path):
    from click.testing import CliRunner

    from hcdg.cli import main

    store = tmp_path / "cli.zarr"
    r = CliRunner().invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store",
                                  str(store), "--model", "hcdg-tiny", "--workers", "0", "--device", "cpu",
                                  "--prompt-filter", "^one pale", "--no-progress", "--limit", "4", "--views", "2",
                                  "--view-config", str(view_toml)])
    assert r.exit_code == 0, r.output
    assert "embedded 8 augmented views (2 per image)" in r.output
    assert fs.read_fingerprint(store)["splits"]["freihand/training"]["views"]["augmentation"]["input_size"] == 64


def test_hdf5_store_keeps_the_view_parameters(synth_freihand, view_toml, tmp_path):
    from hcdg.store.views import load_params

    store = tmp_path / "v.h5"
    embed_run(EmbedConfig(root=str(synth_freihand), store=str(store), view_config=str(view_toml), limit=4,
                          **{**EMBED, "views": 2}))
    params = load_params(store, "freihand/training", 2)
    assert params.shape == (4, 2, 7)
    assert np.array_equal(params[3, 1], draw_view(GeomAug(), train.TrainConfig().color, 0, 3, 1))


@pytest.mark.slow
def test_two_gloo_processes_replay_the_same_views_as_one(synth_freihand, view_store, tmp_path):
    # The view an item replays is a function of (seed, epoch, index), not of the rank: two DDP
    # processes splitting the global batch render the same crops and gather the same feature rows
    # as one process. Step 1's L_heat and L_pose come before any update, so they are equal only if
    # every sample saw the same view (L_con differs: its negatives are per rank, docs/training.md).
    one = train.run(_cfg(synth_freihand, tmp_path / "one", view_store, steps=2, mode="ie", log_every=1))
    two = train.run(_cfg(synth_freihand, tmp_path / "two", view_store, steps=2, mode="ie", log_every=1, nproc=2))
    assert one["world_size"] == 1 and two["world_size"] == 2
    a, b = (pd.read_parquet(tmp_path / n / "metrics.parquet") for n in ("one", "two"))
    a, b = (m[(m.kind == "train") & (m.step == 1)].iloc[0] for m in (a, b))
    for col in ("loss_heat", "loss_pose"):
        assert np.isclose(a[col], b[col], rtol=1e-5), f"{col}: one process {a[col]} vs two {b[col]}"
    assert np.isfinite(b["loss_con"]) and b["loss_con"] > 0
