"""Reliability catalogue, feature store: every damaged or foreign store is refused with one line.

Each case damages a small store the way a disk, a copy or a hand edit could, and checks that
`load_split` / `load_text` (what `hcdg train` loads), `store_info` and the CLI name the array
and chunk instead of training on it or printing a traceback.
"""

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.errors import HcdgError
from hcdg.store import features as fs
from hcdg.store import integrity
from tests.helpers.toy_store import D, KEY, N, toy_store  # 3 chunks: rows 0-3, 4-7, 8-9


def _store(path, errors=None):
    toy_store(path, errors=errors)
    return path


def _refused(path, *needles):
    with pytest.raises(HcdgError) as exc:
        fs.load_split(path, KEY)
    msg = str(exc.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    info = fs.store_info(path)
    assert info["damaged"] and not info["complete"]
    return msg


def _flip(file, offset):
    raw = bytearray(file.read_bytes())
    raw[offset] ^= 0x01
    file.write_bytes(bytes(raw))


def test_intact_store_loads_and_says_checksums_ok(tmp_path):
    path = _store(tmp_path / "s.zarr")
    ids, feats = fs.load_split(path, KEY)
    assert len(ids) == N and np.isfinite(feats.numpy()).all()
    info = fs.store_info(path)
    assert info["complete"] and not info["damaged"]
    (s,) = info["splits"]
    assert s["integrity"] == {"verified": True, "problems": []}
    out = CliRunner().invoke(main, ["store", "info", str(path)])
    assert out.exit_code == 0 and "checksums OK" in out.output and "complete" in out.output.splitlines()[0]


def test_deleted_chunk_is_missing_not_skipped(tmp_path):
    path = _store(tmp_path / "s.zarr")
    (path / "splits/toy/train/feats/c/1/0").unlink()
    _refused(path, "array feats chunk 1 (rows 4-7) is missing", "hcdg embed")
    out = CliRunner().invoke(main, ["store", "info", str(path)])
    assert out.exit_code == 0 and "DAMAGED" in out.output.splitlines()[0]
    assert "0 skipped" in out.output  # not passed off as unreadable images
    out = CliRunner().invoke(main, ["store", "verify", "--checksums-only", str(path)])
    assert out.exit_code == 1 and "chunk 1" in out.output
    assert out.output.strip().splitlines()[-1].startswith("Error: ") and "Traceback" not in out.output


def test_flipped_byte_is_damage(tmp_path):
    path = _store(tmp_path / "s.zarr")
    _flip(path / "splits/toy/train/feats/c/2/0", 5)
    _refused(path, "array feats chunk 2 (rows 8-9) is damaged", "CRC32")


def test_flipped_byte_in_h5_is_damage(tmp_path):
    path = _store(tmp_path / "s.h5")
    with h5py.File(path, "r") as f:
        offset = f["splits/toy/train/feats"].id.get_chunk_info(0).byte_offset
    _flip(path, offset + 3)
    _refused(path, "array feats chunk 0 (rows 0-3) is damaged")


def test_truncated_chunk_is_unreadable(tmp_path):
    path = _store(tmp_path / "s.zarr")
    f = path / "splits/toy/train/feats/c/0/0"
    f.write_bytes(f.read_bytes()[:7])
    _refused(path, "array feats chunk 0 (rows 0-3) unreadable")


def test_edited_shape_is_refused(tmp_path):
    path = _store(tmp_path / "s.zarr")
    meta_file = path / "splits/toy/train/valid/zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"] = [N + 2]
    meta_file.write_text(json.dumps(meta))
    _refused(path, "array valid has shape (12,)", "(10,)")


def test_foreign_codec_is_refused_in_one_line(tmp_path):
    path = _store(tmp_path / "s.zarr")
    meta_file = path / "splits/toy/train/feats/zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["codecs"].append({"name": "numcodecs.pickle", "configuration": {}})
    meta_file.write_text(json.dumps(meta))
    _refused(path, "array feats", "numcodecs.pickle")
    for args in (["store", "info", str(path)], ["store", "verify", "--checksums-only", str(path)]):
        out = CliRunner().invoke(main, args)
        assert "Traceback" not in out.output and "numcodecs.pickle" in out.output


def test_damaged_text_table_is_refused(tmp_path):
    path = _store(tmp_path / "s.zarr")
    _flip(path / "text/feats/c/0/0", 2)
    with pytest.raises(HcdgError, match="text table: array feats chunk 0 is damaged"):
        fs.load_text(path)
    assert fs.store_info(path)["text"]["damaged"]


def test_skipped_rows_still_load_and_an_all_skipped_chunk_is_not_missing(tmp_path):
    errors = [""] * N
    errors[8] = errors[9] = "unreadable image"  # chunk 2 all skipped: zarr writes no file for it
    path = _store(tmp_path / "s.zarr", errors)
    assert not (path / "splits/toy/train/feats/c/2/0").exists()
    ids, _ = fs.load_split(path, KEY)
    assert len(ids) == 8 and fs.store_info(path)["complete"]


def _make_old(path):
    """The store as hcdg wrote it before checksums: no sums array, no 'checksums' in the split metadata."""
    shutil.rmtree(path / "splits/toy/train/sums")
    meta_file = path / "splits/toy/train/zarr.json"
    meta = json.loads(meta_file.read_text())
    del meta["attributes"]["hcdg"]["checksums"]
    meta_file.write_text(json.dumps(meta))


def test_old_store_without_checksums_loads_unverified(tmp_path, capsys):
    path = _store(tmp_path / "s.zarr")
    _make_old(path)
    ids, _ = fs.load_split(path, KEY)
    assert len(ids) == N and "integrity is unverified" in capsys.readouterr().err
    (s,) = fs.store_info(path)["splits"]
    assert s["integrity"] == {"verified": False, "problems": []}
    out = CliRunner().invoke(main, ["store", "verify", "--checksums-only", str(path)])
    assert out.exit_code == 0 and "UNVERIFIED" in out.output
    (path / "splits/toy/train/feats/c/1/0").unlink()  # still caught: rows marked valid hold no features
    _refused(path, "array feats chunk 1 (rows 4-7) is missing")


def test_new_store_that_lost_its_checksums_is_refused(tmp_path):
    path = _store(tmp_path / "s.zarr")
    shutil.rmtree(path / "splits/toy/train/sums")
    _refused(path, "array sums (the chunk checksums) is missing")


def test_crc32_is_of_the_stored_bytes_and_strings_agree_across_formats():
    a = np.arange(12, dtype=np.float16)
    assert integrity.crc32(a) == integrity.crc32(a.copy()) != integrity.crc32(a[::-1].copy())
    assert integrity.crc32(np.array(["a", "b"])) == integrity.crc32(np.array([b"a", b"b"], dtype=object))


def test_train_refuses_a_store_with_a_missing_chunk(synth_freihand, synth_freihand_store, tmp_path):
    store = tmp_path / "feats.zarr"
    shutil.copytree(synth_freihand_store, store)
    (store / "splits/freihand/training/feats/c/0/0").unlink()
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--root", str(synth_freihand), "--store", str(store), "--out", str(out),
                                    "--steps", "1", "--width-mult", "0.25", "--input-size", "64", "--batch-size", "4",
                                    "--workers", "0", "--no-progress"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "array feats chunk 0 (rows 0-47) is missing" in res.output.strip().splitlines()[-1]
    assert not out.exists()  # refused before the first byte of the run folder


@pytest.mark.parametrize("damage", ["delete", "flip", "truncate"])
def test_rerunning_embed_re_embeds_damaged_chunks(synth_freihand, tmp_path, damage):
    store = tmp_path / "s.zarr"
    args = ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store", str(store), "--model",
            "hcdg-tiny", "--workers", "0", "--no-progress", "--prompt-filter", "^one white", "--chunk-rows", "16"]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = fs.load_split(store, "freihand/training")[1].numpy()
    chunk = store / "splits/freihand/training/feats/c/1/0"
    if damage == "delete":
        chunk.unlink()
    elif damage == "flip":
        _flip(chunk, 40)
    else:
        chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(HcdgError, match="array feats chunk 1 "):
        fs.load_split(store, "freihand/training")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "re-embedding 1 damaged chunk(s) [1]" in res.stderr
    assert np.array_equal(fs.load_split(store, "freihand/training")[1].numpy(), before)
