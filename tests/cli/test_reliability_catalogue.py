"""Reliability catalogue, the fault cases of issue 23: nothing lost, nothing silently accepted,
no tracebacks, nothing half-written (see docs/reliability.md)."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.store import staging
from tests.helpers.toy_store import D, KEY, N
from tests.helpers.toy_store import toy_store as _toy_store


def _ok(res):
    assert res.exit_code == 0, res.output
    return res.output


def _err(res):
    """The one-line refusal of a failed command (exit 1, no traceback)."""
    assert res.exit_code == 1 and "Traceback" not in res.output, (res.exit_code, res.output, res.exception)
    return res.output.strip().splitlines()[-1]


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _synth(out, *extra):
    return CliRunner().invoke(main, ["synth", "--format", "rhd", "--out", str(out), "--n", "2", "--n-other", "1",
                                     "--no-progress", *extra])


# --------------------------------------------------------------------------- data lost
def test_synth_overwrite_never_deletes_files_hcdg_did_not_write(tmp_path):
    d = tmp_path / "d"
    (d / "photos").mkdir(parents=True)
    (d / "thesis.tex").write_text("my thesis")
    err = _err(_synth(d, "--overwrite"))
    assert "thesis.tex" in err and "did not write" in err
    assert (d / "thesis.tex").read_text() == "my thesis" and (d / "photos").is_dir()
    # An hcdg dataset is replaced; one the user added a file to is not.
    e = tmp_path / "e"
    _ok(_synth(e))
    _ok(_synth(e, "--seed", "1", "--overwrite"))
    assert json.loads((e / "hcdg_synth.json").read_text())["seed"] == 1
    (e / "training" / "notes.txt").write_text("mine")
    assert "training/notes.txt" in _err(_synth(e, "--seed", "2", "--overwrite"))
    assert (e / "training" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "e"]  # no temp left


def test_stale_temps_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    out = tmp_path / "d"
    dead = tmp_path / ".d.tmp-999999999"
    dead.mkdir()
    (dead / "half.png").write_bytes(b"x")
    live = tmp_path / f".d.tmp-{os.getppid()}"  # a live process's temp (our parent)
    live.mkdir()
    _ok(_synth(out))
    assert not dead.exists() and live.exists()
    assert staging.clean_stale(tmp_path / "m.pt", "export") == []


# --------------------------------------------------------------------------- silent accepts
def test_float16_overflow_is_refused_by_the_writer(tmp_path):
    from hcdg.pipeline.errors import HcdgError

    rows = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
    rows[5, 2] = 1e6  # beyond float16's 65504: the cast would store +inf
    with pytest.raises(HcdgError, match=r"s.zarr: split toy/train row 5: .* overflows float16 .*--dtype float32"):
        _toy_store(tmp_path / "s.zarr", rows)


def test_inf_with_a_valid_checksum_is_refused_on_load(tmp_path):
    import zarr

    from hcdg.pipeline.errors import HcdgError
    from hcdg.store import features as fs
    from hcdg.store import integrity

    path = tmp_path / "s.zarr"
    _toy_store(path)
    g = zarr.open_group(str(path / "splits" / KEY), mode="a")
    feats = g["feats"][4:8]
    feats[1, 0] = np.inf  # what an unchecked float16 cast wrote, with its CRC recomputed
    g["feats"][4:8] = feats
    g["sums"][1] = integrity.chunk_sums({"feats": feats, "norms": g["norms"][4:8], "valid": g["valid"][4:8],
                                         "errors": g["errors"][4:8]})
    with pytest.raises(HcdgError, match=r"array feats chunk 1 \(rows 4-7\) holds non-finite features in 1 rows"):
        fs.load_split(path, KEY)
    res = CliRunner().invoke(main, ["store", "verify", "--checksums-only", str(path)])
    assert "damaged" in _err(res) and "holds non-finite features" in res.output


def test_verify_checksums_only_fails_a_split_with_a_lost_done_flag(tmp_path):
    path = tmp_path / "s.zarr"
    _toy_store(path)
    (path / "splits" / KEY / "done" / "c" / "1").unlink()
    res = CliRunner().invoke(main, ["store", "verify", "--checksums-only", str(path)])
    assert res.exit_code == 1 and "1 of 3 chunks have no done flag" in res.output and "FAILED" in res.output


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r["config"].update(width_mult=0.5), "does not hash to its recorded config_hash"),
    (lambda r: r.update(config=[1, 2]), "'config' is a JSON list"),
])
def test_eval_refuses_a_run_json_that_disagrees_with_its_weights(tmp_path, edit, needle):
    from hcdg.pipeline.errors import HcdgError
    from hcdg.stages.eval import load_run_model
    from tests.helpers.runs import make_run

    run = make_run(tmp_path / "run")
    load_run_model(run)  # as written: loads
    record = json.loads((run / "run.json").read_text())
    edit(record)
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(HcdgError, match=needle):
        load_run_model(run)


@pytest.mark.parametrize("raw, needle", [(b'{"stage": "train", "seed": NaN}', "bare NaN"),
                                         (b'{"stage": "tr\xff\xfein"}', "not UTF-8")])
def test_run_json_is_read_strictly(tmp_path, raw, needle):
    from hcdg.pipeline.errors import HcdgError
    from hcdg.store.runs import read_run

    (tmp_path / "run.json").write_bytes(raw)
    with pytest.raises(HcdgError, match=needle):
        read_run(tmp_path)


def test_report_refuses_unreadable_results_and_resumes_a_partial_report(tmp_path):
    from tests.helpers.runs import make_run

    run = make_run(tmp_path / "run")
    rep = tmp_path / "rep"
    (rep / "tables").mkdir(parents=True)  # a report killed before its marker (hcdg before staged reports)
    (rep / "tables" / "table1.csv").write_text("half")
    _ok(CliRunner().invoke(main, ["report", str(run), "--out", str(rep)]))
    assert (rep / "report.json").is_file() and (rep / "report.html").is_file()
    assert not (rep / "tables" / "table1.csv").exists() or (rep / "tables" / "table1.csv").read_text() != "half"
    before = _snapshot(rep)
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "rhd.parquet").write_bytes(b"PAR1 not really")
    err = _err(CliRunner().invoke(main, ["report", str(run), "--out", str(rep)]))
    assert "rhd.parquet" in err and "not a readable parquet" in err
    assert _snapshot(rep) == before and sorted(p.name for p in tmp_path.iterdir()) == ["rep", "run"]
    (run / "eval" / "rhd.parquet").unlink()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    assert "thesis.tex" in _err(CliRunner().invoke(main, ["report", str(run), "--out", str(other)]))


def _annotation_copy(src, dst):
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("rgb"))
    (dst / "training" / "rgb").symlink_to(src / "training" / "rgb")  # images shared, annotations copied
    return dst


@pytest.mark.parametrize("scale_z", [1e-300, 1e300])
def test_data_check_range_checks_poses(synth_freihand, tmp_path, scale_z):
    root = _annotation_copy(synth_freihand, tmp_path / "root")
    xyz = json.loads((root / "training_xyz.json").read_text())
    xyz[4] = [[x, y, z * scale_z] for x, y, z in xyz[4]]  # uv = f x / z ~ 1e301 px, or a point at infinity
    (root / "training_xyz.json").write_text(json.dumps(xyz))
    err = _err(CliRunner().invoke(main, ["data", "check", "--dataset", "freihand", "--root", str(root)]))
    assert "training_xyz.json" in err and "xyz of pose 4 is out of range" in err


# --------------------------------------------------------------------------- tracebacks
BIG = str(10**30)


@pytest.mark.parametrize("argv, needle", [
    (["synth", "--format", "rhd", "--out", "{t}/d", "--n", str(10**12)], "--n 1000000000000: expected at most"),
    (["synth", "--format", "rhd", "--out", "{t}/d", "--seed", BIG], "--seed: expected an integer in [0, 2**63 - 1]"),
    (["embed", "--dataset", "rhd", "--root", "{t}", "--store", "{t}/s.zarr", "--seed", BIG], "--seed: expected"),
    (["embed", "--dataset", "rhd", "--root", "{t}", "--store", "{t}/s.zarr", "--chunk-rows", str(10**9)],
     "--chunk-rows: expected an integer in [1, 65536]"),
    (["train", "--root", "{t}", "--out", "{t}/r", "--seed", BIG], "--seed: expected"),
    (["sweep", "--root", "{t}", "--out", "{t}/w", "--seed", f"0,{BIG}"], "--seed: expected"),
    (["train", "--root", "{t}", "--out", "{t}/r", "--width-mult", "64"], "--width-mult: expected > 0 and <= 4"),
    (["train", "--root", "{t}", "--out", "{t}/r", "--width-mult", "0"], "--width-mult: expected > 0"),
    (["train", "--root", "{t}", "--out", "{t}/r", "--input-size", "100000"], "--input-size: expected a multiple of 8"),
    (["train", "--root", "{t}", "--out", "{t}/r", "--input-size", "60"], "--input-size: expected a multiple of 8"),
    (["train", "--root", "{t}", "--out", "{t}/r", "--config", "{t}/big.toml"], "lr: expected a finite number"),
    (["viz", "tsne", "--store", "{t}/s.zarr", "--out", "{t}/t.png", "--seed", str(2**32)],
     "--seed: expected an integer in [0, 4294967295]"),
    (["store", "verify", "{t}/s.zarr", "--seed", "-1"], "--seed: expected an integer in [0, 2**63 - 1]"),
    (["export", "--run", "{t}", "--format", "torchscript", "--out", "{t}/m.pt", "--input-size", "100000"],
     "--input-size: expected 16 to"),
])
def test_out_of_range_options_are_one_line_before_any_write(tmp_path, argv, needle):
    (tmp_path / "big.toml").write_text(f"lr = {'1' * 400}\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    err = _err(CliRunner().invoke(main, [a.format(t=tmp_path) for a in argv]))
    assert needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("value", ["'12 34'", "{'a': np.zeros(3)}"])
def test_stb_handpara_of_the_wrong_type_is_one_line(synth_stb, tmp_path, value):
    import shutil

    import scipy.io

    root = tmp_path / "stb"
    shutil.copytree(synth_stb, root)
    scipy.io.savemat(root / "labels" / "B1Counting_BB.mat", {"handPara": eval(value)})
    err = _err(CliRunner().invoke(main, ["data", "check", "--dataset", "stb", "--root", str(root)]))
    assert "B1Counting_BB.mat: 'handPara' holds" in err and "expected numbers" in err


# --------------------------------------------------------------------------- half-written
def _break_image(root, tmp_path):
    """A FreiHAND root sharing synth's files, but with training image 00000003 truncated."""
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    img = copy / "training" / "rgb" / "00000003.jpg"
    img.write_bytes(img.read_bytes()[:200])
    return copy


def test_embed_on_an_unreadable_image_leaves_no_new_store(synth_freihand, tmp_path):
    root = _break_image(synth_freihand, tmp_path)
    store = tmp_path / "s.zarr"
    err = _err(CliRunner().invoke(main, ["embed", "--dataset", "freihand", "--root", str(root), "--store", str(store),
                                         "--model", "hcdg-tiny", "--workers", "0", "--no-progress",
                                         "--prompt-filter", "^one white hand with red"]))
    assert "00000003.jpg: unreadable image" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_train_failing_before_its_first_checkpoint_leaves_no_run_folder(synth_freihand, tmp_path):
    root = _break_image(synth_freihand, tmp_path)
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--root", str(root), "--out", str(out), "--steps", "2",
                                    "--width-mult", "0.25", "--input-size", "64", "--batch-size", "4", "--workers",
                                    "0", "--no-progress", "--mode", "baseline", "--val-fraction", "0.2"])
    assert res.exit_code != 0 and "00000003" in res.output.strip().splitlines()[-1], res.output
    assert not out.exists()  # run.json and metrics.parquet of the failed start are gone


def test_sweep_on_a_damaged_store_leaves_no_folder(synth_freihand, synth_freihand_store, tmp_path):
    import shutil

    store = tmp_path / "s.zarr"
    shutil.copytree(synth_freihand_store, store)
    (store / "splits/freihand/training/feats/c/0/0").unlink()
    out = tmp_path / "sweep"
    err = _err(CliRunner().invoke(main, ["sweep", "--root", str(synth_freihand), "--store", str(store), "--out",
                                         str(out), "--ratio", "0.4,0.6", "--steps", "1", "--width-mult", "0.25",
                                         "--input-size", "64", "--batch-size", "4", "--workers", "0",
                                         "--no-progress"]))
    assert "array feats chunk 0 (rows 0-47) is missing" in err and not out.exists()


def test_torchscript_export_on_a_full_disk_is_one_line_and_cleans_up(tmp_path, small_tmpfs):
    from tests.helpers.runs import make_run

    run = make_run(tmp_path / "run")
    out = small_tmpfs / "m.pt"
    stale = small_tmpfs / ".m.pt.export-999999999"  # a killed export's temp
    stale.write_bytes(b"x")
    (small_tmpfs / "fill").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))
    res = CliRunner().invoke(main, ["export", "--run", str(run), "--format", "torchscript", "--out", str(out),
                                    "--no-check"])
    err = _err(res)  # not a SIGABRT with C++ frames
    assert str(out) in err and ("No space left" in err or "ENOSPC" in err)
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["fill"]


# --------------------------------------------------------------------------- other
def test_data_check_refuses_a_fifo_instead_of_hanging(synth_freihand, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(synth_freihand, root, symlinks=True)
    img = root / "training" / "rgb" / "00000000.jpg"
    img.unlink()
    os.mkfifo(img)
    err = _err(CliRunner().invoke(main, ["data", "check", "--dataset", "freihand", "--root", str(root)]))
    assert "00000000.jpg: is a FIFO, expected a regular image file" in err


def test_report_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_tmpfs):
    from tests.helpers.runs import make_run

    run = make_run(tmp_path / "run")
    (small_tmpfs / "fill").write_bytes(b"\0" * (1024 * 1024 - 48 * 1024))
    rep = small_tmpfs / "rep"
    err = _err(CliRunner().invoke(main, ["report", str(run), "--out", str(rep)]))
    assert "No space left" in err or "ENOSPC" in err
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["fill"]  # no half report, no temp
