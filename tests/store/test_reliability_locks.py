"""Reliability catalogue, one writer at a time: run folders, sweeps and store shards are locked."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.errors import HcdgError
from hcdg.store.feature_writer import shard_lock
from hcdg.store.locks import RUN_LOCK, read_holder, writer_lock

FLAGS = ["--width-mult", "0.25", "--input-size", "64", "--batch-size", "4", "--workers", "0", "--no-progress",
         "--mode", "baseline", "--val-fraction", "0.2"]


def _err(res):
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    return res.output.strip().splitlines()[-1]


def test_second_writer_is_refused_naming_the_holder_and_the_lock_goes_on_release(tmp_path):
    lock = tmp_path / "x.lock"
    with writer_lock(lock, "thing T"):
        assert read_holder(lock)["pid"] == os.getpid()
        with pytest.raises(HcdgError, match=rf"^thing T: another hcdg process is writing it \(pid {os.getpid()} on "):
            with writer_lock(lock, "thing T"):
                pass
    assert not lock.exists()
    with writer_lock(lock, "thing T"):  # free again
        pass


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    lock = tmp_path / "x.lock"
    code = ("import sys, time; from hcdg.store.locks import writer_lock\n"
            "with writer_lock(sys.argv[1], 'x'):\n    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(HcdgError, match=f"pid {proc.pid}"):
            with writer_lock(lock, "x"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_holder(lock)["pid"] == proc.pid  # SIGKILL ran no clean-up: the record is still there
    with writer_lock(lock, "x"):
        pass
    err = capsys.readouterr().err
    assert f"took over a stale lock of pid {proc.pid}" in err and "no longer running" in err


@pytest.fixture(scope="module")
def finished_run(synth_freihand, tmp_path_factory):
    out = tmp_path_factory.mktemp("locks") / "run"
    res = CliRunner().invoke(main, ["train", "--root", str(synth_freihand), "--out", str(out), "--steps", "1",
                                    *FLAGS])
    assert res.exit_code == 0, res.output
    return out


def test_concurrent_resume_is_refused_and_leaves_run_json_as_it_was(synth_freihand, finished_run):
    assert not (finished_run / RUN_LOCK).exists()  # released when the run ended
    before = (finished_run / "run.json").read_bytes()
    with writer_lock(finished_run / RUN_LOCK, f"run folder {finished_run}"):  # another `hcdg train` is running
        res = CliRunner().invoke(main, ["train", "--root", str(synth_freihand), "--out", str(finished_run),
                                        "--steps", "2", "--resume", *FLAGS])
        err = _err(res)
    assert f"run folder {finished_run}: another hcdg process is writing it (pid {os.getpid()}" in err
    assert (finished_run / "run.json").read_bytes() == before


def _error_while_locked(out, what, *args):
    """The CLI's error line for `args` while another process holds `out`'s writer lock."""
    out.mkdir()
    with writer_lock(out / RUN_LOCK, f"{what} {out}"):
        res = CliRunner().invoke(main, [*args, "--out", str(out), *FLAGS])
    return _err(res)


def test_sweep_folder_is_locked(synth_freihand, tmp_path):
    err = _error_while_locked(tmp_path / "sweep", "sweep folder", "sweep", "--root", str(synth_freihand),
                              "--steps", "1", "--lambda-con", "0.1,0.2")
    assert "another hcdg process is writing it" in err


def test_same_store_shard_is_locked_other_shards_are_not(synth_freihand, tmp_path):
    store = tmp_path / "s.zarr"
    with shard_lock(store, (0, 1)):
        res = CliRunner().invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store",
                                        str(store), "--model", "hcdg-tiny", "--workers", "0", "--no-progress"])
        assert f"store {store}: another hcdg process is writing it" in _err(res)
        with shard_lock(store, (1, 2)):  # shards of one store still write in parallel
            pass
    assert not store.exists()


def test_ddp_parent_holds_the_lock_for_its_ranks(synth_freihand, tmp_path):
    out = tmp_path / "run"
    err = _error_while_locked(out, "run folder", "train", "--root", str(synth_freihand), "--steps", "1",
                              "--nproc", "2")
    assert "another hcdg process is writing it" in err and not list(out.iterdir())
