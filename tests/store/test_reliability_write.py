"""Reliability catalogue, writing: validate before the first byte, one line per OS error, umask modes."""

import os
import stat

import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.store.atomic import atomic_write_json

FLAGS = ["--width-mult", "0.25", "--input-size", "64", "--batch-size", "4", "--workers", "0", "--no-progress",
         "--mode", "baseline", "--val-fraction", "0.2"]


def _train(root, out, *extra):
    return CliRunner().invoke(main, ["train", "--root", str(root), "--out", str(out), *FLAGS, *extra])


def _err(res):
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    return res.output.strip().splitlines()[-1]


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("flag, value, needle", [("--input-size", "60", "--input-size: expected a multiple of 8"),
                                                 ("--width-mult", "0", "--width-mult: expected > 0")])
def test_refused_sizes_write_nothing_and_the_fix_then_runs(synth_freihand, tmp_path, flag, value, needle):
    out = tmp_path / "run"
    assert needle in _err(_train(synth_freihand, out, "--steps", "1", flag, value))
    assert not out.exists()
    assert _train(synth_freihand, out, "--steps", "1").exit_code == 0  # not "holds a different run"


def test_refused_resume_of_a_damaged_checkpoint_leaves_the_folder_unchanged(synth_freihand, tmp_path):
    out = tmp_path / "run"
    assert _train(synth_freihand, out, "--steps", "1").exit_code == 0
    (weights,) = (out / "checkpoints").glob("step-*/*.safetensors")
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    before = _snapshot(out)
    err = _err(_train(synth_freihand, out, "--steps", "2", "--resume"))
    assert "step-00000001" in err
    assert _snapshot(out) == before  # run.json byte-identical, no lock or temp file left


def test_out_naming_a_file_is_one_line(synth_freihand, tmp_path):
    (tmp_path / "f").write_text("x")
    for out in (tmp_path / "f", tmp_path / "f" / "run"):
        assert f"{tmp_path / 'f'} is a file, not a folder" in _err(_train(synth_freihand, out, "--steps", "1"))
    assert (tmp_path / "f").read_text() == "x"


def test_stale_temp_files_of_the_run_are_cleaned_on_resume(synth_freihand, tmp_path):
    out = tmp_path / "run"
    assert _train(synth_freihand, out, "--steps", "1").exit_code == 0
    (out / ".tmp-done.json.abc123").write_text("{")  # a kill during the final write
    assert _train(synth_freihand, out, "--steps", "2", "--resume").exit_code == 0
    assert not list(out.glob(".tmp-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions: EACCES cannot be provoked")
def test_permission_denied_is_one_line(synth_freihand, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    err = _err(_train(synth_freihand, ro / "run", "--steps", "1"))
    assert str(ro / "run") in err and ("EACCES" in err or "Permission denied" in err)


def test_full_disk_during_a_checkpoint_is_one_line_and_leaves_no_temp(synth_freihand, small_tmpfs):
    out = small_tmpfs / "run"
    err = _err(_train(synth_freihand, out, "--steps", "1"))
    assert "No space left on device (ENOSPC)" in err and str(out) in err and "free space" in err
    assert not out.exists()  # a new run failing before its first checkpoint leaves nothing (issue 23)


def test_full_disk_during_embed_is_one_line(synth_freihand, small_tmpfs):
    store = small_tmpfs / "s.h5"
    res = CliRunner().invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store",
                                    str(store), "--model", "hcdg-tiny", "--workers", "0", "--no-progress"])
    err = _err(res)
    assert "ENOSPC" in err and str(store) in err
    assert not list(small_tmpfs.glob(".tmp-*"))


def test_files_keep_the_umask(synth_freihand, tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert _train(synth_freihand, out, "--steps", "1").exit_code == 0
        modes = {p.relative_to(out): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
        assert modes and all(m == (0o755 if (out / p).is_dir() else 0o644) for p, m in modes.items()), modes
        os.umask(0o077)
        atomic_write_json(tmp_path / "private.json", {})
        assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)
