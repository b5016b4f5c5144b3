"""`hcdg embed` end to end: tiny random CLIP over synthetic datasets in the real formats."""

import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hcdg.cli import main
from hcdg.pipeline.datasets import open_dataset
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.prompts import filter_prompts, table2_prompts
from hcdg.stages.embed import EmbedConfig, parse_shard, run, shard_chunks
from hcdg.store import features as fs

#: Shared settings: 48 FreiHAND-format images -> 3 chunks of 16, batches of 8; the 560 "one ..." prompts.
ARGS = dict(model="hcdg-tiny", batch_size=8, chunk_rows=16, prompt_filter="^one ", progress=False)
CLI_ARGS = ["--model", "hcdg-tiny", "--batch-size", "8", "--chunk-rows", "16", "--prompt-filter", "^one ",
            "--no-progress"]


def _embed(root, store, **kw):
    return run(EmbedConfig(dataset="freihand", root=str(root), store=str(store), **{**ARGS, "workers": 0, **kw}))


@pytest.fixture(scope="module")
def ref_store(synth_freihand, tmp_path_factory):
    """The uninterrupted reference store (with DataLoader workers)."""
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    summary = run(EmbedConfig(dataset="freihand", root=str(synth_freihand), store=str(path), workers=2, **ARGS))
    assert summary.embedded == 48 and summary.complete_rows == 48 and summary.text_computed
    return path


def test_rows_are_open_clips_own_encodings(ref_store, synth_freihand):
    reader = open_dataset("freihand", synth_freihand)
    torch.manual_seed(0)  # hcdg-tiny, --seed 0: open_clip's own init after torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("hcdg-tiny")
    model.eval()
    tok = open_clip.get_tokenizer("hcdg-tiny")
    ids, feats = fs.load_split(ref_store, "freihand/training")
    assert ids == [reader.sample_id(i) for i in range(len(reader))] and len(ids) == 48
    with torch.inference_mode():
        pixels = torch.stack([preprocess(Image.open(reader.image_path(i)).convert("RGB")) for i in range(48)])
        want = model.encode_image(pixels)
    rel = torch.linalg.norm(feats - want, dim=1) / torch.linalg.norm(want, dim=1)
    assert rel.max() < 2e-3  # float16 storage
    with fs.StoreReader(ref_store) as r:
        assert np.allclose(r.read("splits/freihand/training/norms"), torch.linalg.norm(want, dim=1), rtol=1e-4)
    prompts, tfeats = fs.load_text(ref_store)
    plist = filter_prompts(table2_prompts(), "^one ")
    assert prompts == list(plist.texts) and fs.load_text_ids(ref_store) == list(plist.ids)
    with torch.inference_mode():
        twant = model.encode_text(tok(prompts))
    assert (torch.linalg.norm(tfeats - twant, dim=1) / torch.linalg.norm(twant, dim=1)).max() < 2e-3
    dup = [i for i, t in enumerate(prompts) if prompts.index(t) != i]
    assert len(dup) == 28 and all(torch.equal(tfeats[i], tfeats[prompts.index(prompts[i])]) for i in dup)
    assert fs.read_fingerprint(ref_store)["prompts"] == {"digest": plist.digest(), "count": 560}


def test_batch_and_chunk_sizes_do_not_change_features(ref_store, synth_freihand, tmp_path):
    _embed(synth_freihand, tmp_path / "b.zarr", batch_size=5, chunk_rows=7)
    _, a = fs.load_split(ref_store, "freihand/training")
    _, b = fs.load_split(tmp_path / "b.zarr", "freihand/training")
    assert torch.allclose(a, b, rtol=2e-3, atol=2e-3)
    assert fs.store_info(tmp_path / "b.zarr")["splits"][0]["chunks"] == 7


def test_hdf5_store_same_layout_and_bytes(ref_store, synth_freihand, tmp_path):
    h5 = tmp_path / "s.h5"
    _embed(synth_freihand, h5)
    assert h5.is_file() and not fs.staging_path(h5).exists()
    assert fs.array_digests(h5) == fs.array_digests(ref_store)
    assert fs.read_fingerprint(h5) == fs.read_fingerprint(ref_store)
    assert fs.store_info(h5)["format"] == "hdf5"


def test_mismatched_fingerprints_are_refused_and_leave_the_store_alone(ref_store, synth_freihand, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(ref_store, store)
    before = fs.array_digests(store)
    with pytest.raises(HcdgError, match="dtype: store has 'float16', this run has 'float32'"):
        _embed(synth_freihand, store, dtype="float32")
    with pytest.raises(HcdgError, match="encoder.weights.seed: store has 0, this run has 1"):
        _embed(synth_freihand, store, seed=1)
    with pytest.raises(HcdgError, match="prompts.count: store has 560, this run has 3920"):
        _embed(synth_freihand, store, prompt_filter=None)
    changed = tmp_path / "frei"
    shutil.copytree(synth_freihand, changed)
    with open(changed / "training" / "rgb" / "00000005.jpg", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(HcdgError, match=r"embedded from different data, refusing to add to it \(manifest.digest: store has '[0-9a-f]{16}'\.\.\."):
        _embed(changed, store)
    with pytest.raises(HcdgError, match="limit: store has null, this run has 10"):
        _embed(synth_freihand, store, limit=10)
    assert fs.array_digests(store) == before
    rerun = _embed(synth_freihand, store)  # the same command: nothing left to do
    assert rerun.embedded == 0 and not rerun.text_computed and fs.array_digests(store) == before
    # A limit at or above the split's 48 images changes nothing, so it is the same split.
    assert _embed(synth_freihand, store, limit=1000).embedded == 0 and fs.array_digests(store) == before


def test_default_and_explicit_stb_camera_are_the_same_split(synth_stb, tmp_path):
    store = tmp_path / "stb.zarr"
    kw = {**ARGS, "workers": 0}
    first = run(EmbedConfig(dataset="stb", root=str(synth_stb), store=str(store), **kw))
    again = run(EmbedConfig(dataset="stb", root=str(synth_stb), store=str(store), cameras=("BB_left",), **kw))
    assert first.embedded > 0 and again.embedded == 0
    with pytest.raises(HcdgError, match="cameras"):
        run(EmbedConfig(dataset="stb", root=str(synth_stb), store=str(store), cameras=("BB_right",), **kw))


def test_info_json_and_verify(ref_store, tmp_path):
    res = CliRunner().invoke(main, ["store", "info", str(ref_store), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["text"]["count"] == 560 and info["text"]["n_distinct"] == 532 and info["random_weights"]
    (s,) = info["splits"]
    assert (s["key"], s["rows"], s["complete_rows"]) == ("freihand/training", 48, 48)
    assert info["fingerprint"]["encoder"]["model"] == "hcdg-tiny" and info["fingerprint"]["dtype"] == "float16"
    res = CliRunner().invoke(main, ["store", "info", str(ref_store)])
    assert "split freihand/training: 48/48 rows" in res.stdout and "RANDOM weights (seed 0)" in res.stdout
    res = CliRunner().invoke(main, ["store", "verify", str(ref_store), "--sample", "6", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "verify" in res.stdout and res.stdout.rstrip().endswith("OK")
    bad = tmp_path / "bad.zarr"
    shutil.copytree(ref_store, bad)
    import zarr

    g = zarr.open_group(str(bad), mode="r+")
    g["splits/freihand/training/feats"][17] = g["splits/freihand/training/feats"][18]
    res = CliRunner().invoke(main, ["store", "verify", str(bad), "--sample", "48", "--device", "cpu"])
    assert res.exit_code == 1 and "array feats chunk" in res.stdout and "is damaged" in res.stdout  # its CRC32
    from hcdg.store import integrity

    split = g["splits/freihand/training"]  # the same edit with its checksums redone: caught by re-encoding
    r = split.attrs["hcdg"]["chunk_rows"]
    c = 17 // r
    split["sums"][c] = integrity.chunk_sums({name: split[name][c * r:(c + 1) * r] for name in integrity.CHECKED})
    res = CliRunner().invoke(main, ["store", "verify", str(bad), "--sample", "48", "--device", "cpu"])
    assert res.exit_code == 1 and "MISMATCH at rows [17]" in res.stdout and "Error:" in res.output


def test_corrupt_image_fails_naming_it_then_skip_corrupt_records_it(synth_freihand, tmp_path):
    root = tmp_path / "frei"
    shutil.copytree(synth_freihand, root)
    bad = root / "training" / "rgb" / "00000020.jpg"
    bad.write_bytes(b"this is not a jpeg")
    store = tmp_path / "s.zarr"
    with pytest.raises(HcdgError, match=r"00000020\.jpg: unreadable image .*--skip-corrupt"):
        _embed(root, store)
    (s,) = fs.store_info(store)["splits"]
    assert (s["complete_chunks"], s["complete_rows"]) == (1, 16)  # chunk 0 kept, chunk 1 not flagged
    summary = _embed(root, store, skip_corrupt=True)
    assert summary.embedded == 32 and summary.skipped == 1
    (s,) = fs.store_info(store)["splits"]
    assert s["complete"] and s["skipped_ids"] == ["00000020"]
    ids, feats = fs.load_split(store, "freihand/training")
    assert len(ids) == 47 and "00000020" not in ids and torch.isfinite(feats).all()
    ids, feats = fs.load_split(store, "freihand/training", include_skipped=True)
    assert ids[20] == "00000020" and torch.isnan(feats[20]).all()


def test_bad_inputs_are_one_line_errors(synth_freihand, tmp_path):
    runner = CliRunner()
    cases = [
        (["--root", str(tmp_path / "nope"), "--model", "hcdg-tiny"], "dataset root folder not found"),
        (["--root", str(synth_freihand), "--model", "ViT-Z-1"], "unknown open_clip model"),
        (["--root", str(synth_freihand), "--model", "hcdg-tiny", "--shard", "2/2"], "expected 0 <= i < n"),
        (["--root", str(synth_freihand), "--model", "hcdg-tiny", "--pretrained", "openai"], "neither a tag of hcdg-tiny"),
    ]
    for args, msg in cases:
        res = runner.invoke(main, ["embed", "--dataset", "freihand", "--store", str(tmp_path / "a.zarr"), *args])
        assert res.exit_code == 1 and msg in res.output and res.output.count("\n") == 1, res.output
    assert not (tmp_path / "a.zarr").exists()
    (tmp_path / "file").write_text("x")
    res = runner.invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand),
                               "--store", str(tmp_path / "file" / "s.zarr"), *CLI_ARGS])
    assert res.exit_code == 1 and "file is a file, not a folder" in res.output and res.output.count("\n") == 1


@pytest.mark.slow
def test_done_when_freihand_rhd_stb_with_table2_in_one_verified_store(synth_freihand, synth_rhd, synth_stb, tmp_path):
    store = str(tmp_path / "all.zarr")
    runner = CliRunner()
    for ds, root in (("freihand", synth_freihand), ("rhd", synth_rhd), ("stb", synth_stb)):
        res = runner.invoke(main, ["embed", "--dataset", ds, "--root", str(root), "--store", store, "--model",
                                   "hcdg-tiny", "--workers", "0", "--no-progress"])
        assert res.exit_code == 0, res.output
        assert "rows complete" in res.stdout
        ids, feats = fs.load_split(store, f"{ds}/{open_dataset(ds, root).split}")
        reader = open_dataset(ds, root)
        assert ids == [reader.sample_id(i) for i in range(len(reader))] and feats.shape == (len(reader), 512)
    info = fs.store_info(store)
    assert info["complete"] and info["text"]["count"] == 3920 and info["text"]["n_distinct"] == 3724
    assert [s["key"] for s in info["splits"]] == ["freihand/training", "rhd/evaluation", "stb/test"]
    res = runner.invoke(main, ["store", "verify", store, "--sample", "4", "--device", "cpu"])
    assert res.exit_code == 0 and res.stdout.count("tolerance 2e-03: OK") == 4, res.output
    res = runner.invoke(main, ["prompts", "--store", store])
    assert res.stdout.splitlines()[0] == "0\ta cropped image of white hand with mountain room"


def test_shard_ranges_partition_the_chunks(monkeypatch):
    for n_chunks in (1, 3, 7, 128):
        for n in (1, 2, 3, 8):
            ranges = [list(shard_chunks(n_chunks, (i, n))) for i in range(n)]
            assert sorted(sum(ranges, [])) == list(range(n_chunks))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert parse_shard(None) == (3, 4) and parse_shard("1/2") == (1, 2)
    with pytest.raises(HcdgError, match="expected i/n"):
        parse_shard("half")


def test_random_weights_warning_once_per_store(ref_store, tmp_path, capsys):
    store = tmp_path / "copy.zarr"
    shutil.copytree(ref_store, store)
    fs.load_split(store, "freihand/training")
    fs.load_text(store)
    err = capsys.readouterr().err
    assert err.count("RANDOM hcdg-tiny weights") == 1 and err.count("\n") == 1


def test_array_digests_see_a_one_value_change(ref_store, tmp_path):
    """`array_digests` (used by the resume tests) must notice a one-value change."""
    store = tmp_path / "c.zarr"
    shutil.copytree(ref_store, store)
    import zarr

    zarr.open_group(str(store), mode="r+")["splits/freihand/training/norms"][3] = 0.0
    a, b = fs.array_digests(ref_store), fs.array_digests(store)
    assert len(a) == 10 and [k for k in a if a[k] != b[k]] == ["splits/freihand/training/norms"]


def test_adding_a_split_uses_the_stores_recorded_encoder_by_default(synth_freihand, synth_rhd, tmp_path):
    store = str(tmp_path / "s.zarr")
    args = ["--batch-size", "8", "--chunk-rows", "16", "--prompt-filter", "^one ", "--workers", "0", "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store", store,
                                 "--model", "hcdg-tiny", "--seed", "3", *args])  # fmt: skip
    assert first.exit_code == 0, first.output
    # no --model / --seed: the store's hcdg-tiny with random weights of seed 3, not ViT-B-32
    second = runner.invoke(main, ["embed", "--dataset", "rhd", "--root", str(synth_rhd), "--store", store, *args])
    assert second.exit_code == 0, second.output
    fp = fs.read_fingerprint(store)
    assert fp["encoder"]["model"] == "hcdg-tiny" and fp["encoder"]["weights"] == {"kind": "random", "seed": 3}
    assert set(fp["splits"]) == {"freihand/training", "rhd/evaluation"}
    from hcdg.stages import embed as stage

    assert stage.encoder_choice(stage.EmbedConfig(dataset="rhd", root="r", store=str(tmp_path / "none.zarr")))[0] \
        == "ViT-B-32"  # no store yet: the paper's encoder
