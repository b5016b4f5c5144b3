"""`hcdg viz tsne` (Figure 3) and `hcdg viz retrieve` (Figure 4) from a tiny random-weight store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import featviz
from hcdg.pipeline.errors import HcdgError
from hcdg.stages import viz
from hcdg.stages.embed import EmbedConfig
from hcdg.stages.embed import run as embed
from hcdg.store import features

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: 2 hand colours x 2 colours x 2 hands x 2 backgrounds x heads "a photo of"/"a photo of right".
PROMPTS = r"^a photo of (right )?(black|white) (right )?hand with (dotted|lake) "


@pytest.fixture(scope="module")
def store(tmp_path_factory, synth_freihand, synth_stb, synth_rhd) -> Path:
    path = tmp_path_factory.mktemp("viz") / "store.zarr"
    for ds, root in (("freihand", synth_freihand), ("stb", synth_stb), ("rhd", synth_rhd)):
        embed(EmbedConfig(dataset=ds, root=str(root), store=str(path), model="hcdg-tiny", workers=0,
                          progress=False, prompt_filter=PROMPTS, chunk_rows=64))
    return path


def test_rank_by_cosine_puts_an_identical_direction_first_and_skips_the_query():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(10, 16))
    feats[7] = 3.0 * feats[2]  # same direction as row 2, other norm
    order, sims = featviz.rank_by_cosine(torch.from_numpy(feats[2]), feats, exclude=2)
    assert order[0] == 7 and sims[0] == pytest.approx(1.0)
    assert 2 not in order and len(order) == 9
    assert np.all(np.diff(sims) <= 1e-12)
    # hand-worked: query (1, 0) against (0, 1), (1, 1), (-1, 0)
    order, sims = featviz.rank_by_cosine(np.array([1.0, 0.0]), np.array([[0, 1.0], [1, 1], [-1, 0]]))
    assert order.tolist() == [1, 0, 2]
    np.testing.assert_allclose(sims, [np.sqrt(0.5), 0.0, -1.0])


def test_tsne_writes_png_and_points_for_aug_and_every_split(tmp_path, store, capsys):
    out = tmp_path / "fig3.png"
    res = CliRunner().invoke(main, ["viz", "tsne", "--store", str(store), "--out", str(out), "--n", "12",
                                    "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == PNG_MAGIC
    pts = pd.read_csv(out.with_suffix(".csv"))
    n = {k: len(features.load_split(store, k)[0]) for k in ("freihand/training", "stb/test", "rhd/evaluation")}
    want = {"aug": min(12, n["freihand/training"]), "frei": min(12, n["freihand/training"]),
            "stb": min(12, n["stb/test"]), "rhd": min(12, n["rhd/evaluation"])}
    assert pts.groupby("group").size().to_dict() == want
    aug = pts[pts["group"] == "aug"]
    prompts, _ = features.load_text(store)
    assert aug["prompt_id"].between(0, len(prompts) - 1).all() and (pts.loc[pts.group != "aug", "prompt_id"] == -1).all()
    assert set(aug["split"]) == {"freihand/training"}
    assert np.isfinite(pts[["x", "y"]].to_numpy()).all()
    again = viz.tsne(viz.TsneConfig(store=str(store), out=str(tmp_path / "again.png"), n=12, seed=3))
    pd.testing.assert_frame_equal(pd.read_csv(again["csv"]), pts)  # seeded: same points
    assert again["random_weights"]


def test_aug_features_mix_half_and_half():
    img = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    txt = torch.tensor([[0.0, 5.0]])
    mixed, pids = featviz.aug_features(img, txt, np.array([0, 1]), np.random.default_rng(0))
    assert pids.tolist() == [0, 0]
    np.testing.assert_allclose(mixed, [[0.5, 0.5], [0.0, 1.0]])  # 0.5 * (unit img + unit txt)
    raw, _ = featviz.aug_features(img, txt, np.array([0]), np.random.default_rng(0), normalize=False)
    np.testing.assert_allclose(raw, [[1.5, 2.5]])  # the printed 0.5 * (f_img + f_txt)


def test_retrieve_ranks_the_other_images_by_cosine_and_draws_them(tmp_path, store, synth_freihand):
    prompts, txt = features.load_text(store)
    ids, img = features.load_split(store, "freihand/training")
    out = tmp_path / "fig4.png"
    res = CliRunner().invoke(main, ["viz", "retrieve", "--store", str(store), "--root", str(synth_freihand),
                                    "--index", "5", "--prompt", prompts[1], "--ratio", "0.6", "--top", "6",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == PNG_MAGIC
    lines = [ln.split() for ln in res.output.splitlines() if ln.strip()[:1].isdigit()]
    assert len(lines) == 6
    # brute force: r * unit(img[5]) + (1 - r) * unit(txt[1]) against every other image
    q = 0.6 * img[5] / img[5].norm() + 0.4 * txt[1] / txt[1].norm()
    cos = (img @ q / (img.norm(dim=1) * q.norm())).numpy()
    cos[5] = -np.inf
    want = [ids[i] for i in np.argsort(-cos, kind="stable")[:6]]
    assert [ln[1] for ln in lines] == want
    assert ids[5] not in [ln[1] for ln in lines]


def test_retrieve_with_ratio_one_finds_the_nearest_image_feature(tmp_path, store, synth_freihand):
    prompts, _ = features.load_text(store)
    ids, img = features.load_split(store, "freihand/training")
    res = viz.retrieve(viz.RetrieveConfig(store=str(store), root=str(synth_freihand), index=0, prompt=prompts[0],
                                          ratio=1.0, top=3, out=str(tmp_path / "r.png")))
    unit = img / img.norm(dim=1, keepdim=True)
    sims = (unit[1:] @ unit[0]).numpy()
    assert res["ranked"][0][0] == ids[1 + int(np.argmax(sims))]
    assert res["ranked"][0][1] == pytest.approx(float(sims.max()), abs=1e-5)


def test_retrieve_errors(tmp_path, store, synth_freihand):
    prompts, _ = features.load_text(store)
    cfg = dict(store=str(store), root=str(synth_freihand), out=str(tmp_path / "x.png"))
    with pytest.raises(HcdgError, match="not one of the .* prompts.*did you mean"):
        viz.retrieve(viz.RetrieveConfig(**cfg, prompt=prompts[0] + "s"))
    with pytest.raises(HcdgError, match="--index 999"):
        viz.retrieve(viz.RetrieveConfig(**cfg, prompt=prompts[0], index=999))
    res = CliRunner().invoke(main, ["viz", "tsne", "--store", str(tmp_path / "nostore"), "--out", str(tmp_path / "t.png")])
    assert res.exit_code == 1 and "no feature store" in res.output
    assert not (tmp_path / "x.png").exists()


def test_tsne_refuses_a_damaged_split_naming_it(tmp_path, store):
    import shutil

    copy = tmp_path / "s.zarr"
    shutil.copytree(store, copy)
    chunk = copy / "splits/rhd/evaluation/feats/c/0/0"
    raw = bytearray(chunk.read_bytes())
    raw[40] ^= 0x01
    chunk.write_bytes(bytes(raw))
    with pytest.raises(HcdgError, match=r"split rhd/evaluation is damaged: .*array feats chunk 0"):
        viz.tsne(viz.TsneConfig(store=str(copy), out=str(tmp_path / "t.png"), n=8))
    assert not (tmp_path / "t.png").exists()


def test_retrieve_refuses_a_root_of_other_images_with_the_same_ids(tmp_path, store, synth_freihand):
    from hcdg.stages.synth import SynthConfig
    from hcdg.stages.synth import run as synth

    other = tmp_path / "other"  # same layout and ids as synth_freihand, other images
    synth(SynthConfig(format="freihand", out=str(other), n=12, n_other=4, seed=7), progress=False)
    prompts, _ = features.load_text(store)
    with pytest.raises(HcdgError, match=r"--root .*other: not the dataset freihand/training was embedded from"):
        viz.retrieve(viz.RetrieveConfig(store=str(store), root=str(other), out=str(tmp_path / "x.png"),
                                        prompt=prompts[0]))
