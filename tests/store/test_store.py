"""Feature store mechanics without CLIP: chunks, done flags, fingerprints, HDF5 export, loaders."""

import threading

import numpy as np
import pytest
import torch

from hcdg.pipeline.errors import HcdgError
from hcdg.store import features as fs
from hcdg.store import fingerprint as fpr
from hcdg.store.feature_writer import StoreWriter

D = 8
ENC = {"model": "m", "weights": {"kind": "random", "seed": 0}, "precision": "fp32"}


def _fp(dtype="float16", seed=0):
    return fpr.store_fingerprint({**ENC, "weights": {"kind": "random", "seed": seed}}, "abc", 3, dtype)


def _split_fp(sizes=(10, 20)):
    return fpr.split_fingerprint([(f"img{i}.jpg", s) for i, s in enumerate(sizes)], dataset="toy", split="train",
                                 options={}, limit=None)


def _text(writer, rng):
    feats = rng.normal(size=(3, D)).astype(np.float32)
    writer.ensure_text([0, 1, 2], ["a", "b", "a"], "test", lambda: (feats, 2))
    return feats


def _rows(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32) * 3


@pytest.mark.parametrize("name", ["s.zarr", "s.h5"])
def test_chunks_done_flags_and_loaders(tmp_path, name):
    path = tmp_path / name
    rng = np.random.default_rng(0)
    w = StoreWriter(path, _fp(), D)
    text = _text(w, rng)
    ids = [f"{i:03d}" for i in range(10)]
    split = w.open_split("toy/train", ids, 4, _split_fp(), {"root": "/x"})
    assert split.n_chunks == 3 and list(split.rows(2)) == [8, 9]
    rows = _rows(10)
    for c in (2, 0):  # out of order, chunk 1 missing
        split.write_chunk(c, rows[split.rows(c).start:split.rows(c).stop], [""] * len(split.rows(c)))
    assert split.done().tolist() == [True, False, True]
    w.export_h5()  # nothing complete for the split yet: an .h5 holds only the text
    info = fs.store_info(path)
    (s,) = info["splits"]
    assert (s["rows"], s["complete_rows"], s["complete_chunks"], s["complete"]) == (10, 6, 2, False)
    with pytest.raises(HcdgError, match=r"incomplete \(6/10 rows\)"):
        fs.load_split(path, "toy/train")
    split.write_chunk(1, rows[4:8], [""] * 4)
    w.export_h5()
    got_ids, feats = fs.load_split(path, "toy/train", "cpu")
    assert got_ids == ids and feats.dtype == torch.float32 and feats.shape == (10, D)
    assert np.array_equal(feats.numpy(), rows.astype(np.float16).astype(np.float32))
    prompts, tfeats = fs.load_text(path)
    assert prompts == ["a", "b", "a"] and np.array_equal(tfeats.numpy(), text.astype(np.float16).astype(np.float32))
    assert fs.load_text_ids(path) == [0, 1, 2]
    with fs.StoreReader(path) as r:
        assert np.allclose(r.read("splits/toy/train/norms"), np.linalg.norm(rows, axis=1), rtol=1e-6)
    fp = fs.read_fingerprint(path)
    assert fp["dtype"] == "float16" and fp["splits"]["toy/train"]["manifest"]["n_files"] == 2
    assert fs.store_info(path)["complete"]
    if name.endswith(".h5"):
        assert not fs.staging_path(path).exists()


def test_float32_store_is_exact(tmp_path):
    w = StoreWriter(tmp_path / "s.zarr", _fp("float32"), D)
    split = w.open_split("toy/train", ["a", "b", "c"], 2, _split_fp(), {})
    rows = _rows(3)
    split.write_chunk(0, rows[:2], ["", ""])
    split.write_chunk(1, rows[2:], [""])
    assert np.array_equal(fs.load_split(tmp_path / "s.zarr", "toy/train")[1].numpy(), rows)


def test_concurrent_chunk_writers_lose_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    n, r = 64, 4
    rows = _rows(n, 1)
    StoreWriter(path, _fp(), D).open_split("toy/train", [str(i) for i in range(n)], r, _split_fp(), {})

    def shard(i):
        split = StoreWriter(path, _fp(), D).open_split("toy/train", [str(i) for i in range(n)], r, _split_fp(), {})
        for c in range(i, split.n_chunks, 4):  # interleaved chunks, four writers at once
            split.write_chunk(c, rows[c * r:(c + 1) * r], [""] * r)

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(fs.load_split(path, "toy/train")[1].numpy(), rows.astype(np.float16).astype(np.float32))


def test_skipped_rows(tmp_path):
    path = tmp_path / "s.zarr"
    split = StoreWriter(path, _fp(), D).open_split("toy/train", ["a", "b", "c"], 3, _split_fp(), {})
    split.write_chunk(0, _rows(3), ["", "OSError: broken", ""])
    info = fs.store_info(path)["splits"][0]
    assert info["skipped"] == 1 and info["skipped_ids"] == ["b"]
    ids, feats = fs.load_split(path, "toy/train")
    assert ids == ["a", "c"] and torch.isfinite(feats).all()
    ids, feats = fs.load_split(path, "toy/train", include_skipped=True)
    assert ids == ["a", "b", "c"] and torch.isnan(feats[1]).all() and torch.isfinite(feats[[0, 2]]).all()
    with fs.StoreReader(path) as r:
        assert r.read("splits/toy/train/errors").tolist() == ["", "OSError: broken", ""]


def test_fingerprint_mismatch_is_refused_saying_what_differs(tmp_path):
    path = tmp_path / "s.zarr"
    StoreWriter(path, _fp(), D).open_split("toy/train", ["a", "b"], 2, _split_fp(), {})
    with pytest.raises(HcdgError) as err:
        StoreWriter(path, _fp("float32", seed=5), D)
    msg = str(err.value)
    assert "dtype: store has 'float16', this run has 'float32'" in msg
    assert "encoder.weights.seed: store has 0, this run has 5" in msg
    w = StoreWriter(path, _fp(), D)
    with pytest.raises(HcdgError, match=r"split toy/train was embedded from different data.*manifest\.digest"):
        w.open_split("toy/train", ["a", "b"], 2, _split_fp((10, 21)), {})
    with pytest.raises(HcdgError, match="n_rows: store has 2, this run has 3"):
        w.open_split("toy/train", ["a", "b", "c"], 2, _split_fp(), {})
    # another split is fine
    assert w.open_split("toy/other", ["x"], 2, _split_fp((1,)), {}) is not None


def test_h5_keeps_earlier_splits_when_adding_one(tmp_path):
    path = tmp_path / "s.h5"
    a, b = _rows(3, 1), _rows(2, 2)
    w = StoreWriter(path, _fp(), D)
    s1 = w.open_split("toy/train", ["a", "b", "c"], 8, _split_fp(), {})
    s1.write_chunk(0, a, [""] * 3)
    w.export_h5()
    w = StoreWriter(path, _fp(), D)
    assert w.open_split("toy/train", ["a", "b", "c"], 8, _split_fp(), {}) is None  # complete in the .h5
    s2 = w.open_split("toy/val", ["x", "y"], 8, _split_fp((5,)), {})
    s2.write_chunk(0, b, ["", ""])
    w.export_h5()
    assert np.array_equal(fs.load_split(path, "toy/train")[1].numpy(), a.astype(np.float16).astype(np.float32))
    assert fs.load_split(path, "toy/val")[0] == ["x", "y"]
    assert not fs.staging_path(path).exists()
    with pytest.raises(HcdgError, match="different fingerprint"):
        StoreWriter(path, _fp("float32"), D)
    assert not fs.staging_path(path).exists()  # a refused run leaves nothing behind


def test_bad_paths(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(HcdgError, match="not a feature store"):
        StoreWriter(tmp_path / "junk", _fp(), D)
    (tmp_path / "file").write_text("x")
    with pytest.raises(HcdgError, match="cannot create the store"):
        StoreWriter(tmp_path / "file" / "s.zarr", _fp(), D)
    with pytest.raises(HcdgError, match="no feature store there"):
        fs.load_split(tmp_path / "missing.zarr", "toy/train")
    with pytest.raises(HcdgError, match="not a readable feature store|not an hcdg feature store"):
        fs.read_meta(tmp_path / "junk")
    with pytest.raises(HcdgError, match="expected '<dataset>/<split>'"):
        fs.load_split(tmp_path / "missing.zarr", "train")


def test_diff_names_nested_keys():
    assert fpr.diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c: store has 2, this run has 3"]
    assert fpr.diff({"a": 1}, {"a": 1, "z": "x"}) == ["z: store has nothing, this run has 'x'"]
    assert fpr.diff({"a": [1, 2]}, {"a": (1, 2)}) == []
    m1 = fpr.manifest_fingerprint([("a.jpg", 3), ("b.jpg", 4)])
    m2 = fpr.manifest_fingerprint([("b.jpg", 4), ("a.jpg", 3)])
    assert m1["n_files"] == 2 and m1["total_bytes"] == 7 and m1["digest"] != m2["digest"]


def test_damaged_store_metadata_is_one_line_error(tmp_path):
    # A damaged zarr.json made StoreWriter fail with a JSONDecodeError traceback; a folder named *.h5
    # gave a multi-line h5py message.
    path = tmp_path / "s.zarr"
    StoreWriter(path, _fp(), D)
    (path / "zarr.json").write_text("{broken")
    with pytest.raises(HcdgError, match="not a readable feature store"):
        StoreWriter(path, _fp(), D)
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(HcdgError, match="not a readable feature store") as err:
        fs.read_meta(tmp_path / "d.h5")
    assert "\n" not in str(err.value)


def test_rewritten_chunk_does_not_keep_stale_errors(tmp_path):
    # A run killed after writing a chunk's error texts but before its done flag: the rerun rewrites the
    # chunk, now readable, and must clear those texts.
    path = tmp_path / "s.zarr"
    split = StoreWriter(path, _fp(), D).open_split("toy/train", ["a", "b"], 2, _split_fp(), {})
    split.write_chunk(0, _rows(2), ["", "OSError: broken"])
    split.group["done"][0] = 0
    split.write_chunk(0, _rows(2), ["", ""])
    with fs.StoreReader(path) as r:
        assert r.read("splits/toy/train/errors").tolist() == ["", ""]
        assert r.read("splits/toy/train/valid").tolist() == [True, True]
