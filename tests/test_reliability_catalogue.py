"""Reliability catalogue, the fault cases of issue 23: nothing lost, nothing silently accepted,
no tracebacks, nothing half-written (see docs/reliability.md)."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.store import staging


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
