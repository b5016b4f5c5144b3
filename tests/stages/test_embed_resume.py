"""Kill-and-resume and sharding of `hcdg embed`, in real subprocesses (SIGKILL, concurrent shards).

The kill is deterministic: `HCDG_TEST_KILL_AFTER_CHUNKS=k` (a test-only hook, see
`hcdg.stages.embed`) lets k chunks finish, writes the next chunk's features
without its done flag, then SIGKILLs the process.
"""

import os
import signal
import subprocess
import sys

import pytest

from hcdg.stages.embed import KILL_HOOK, EmbedConfig, run
from hcdg.store import features as fs

ARGS = ["--model", "hcdg-tiny", "--batch-size", "8", "--chunk-rows", "16", "--prompt-filter", "^one ",
        "--no-progress"]


def _cmd(root, store, *extra):
    return [sys.executable, "-m", "hcdg", "embed", "--dataset", "freihand", "--root", str(root),
            "--store", str(store), *ARGS, *extra]


def _env(**extra):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def _resume(root, store):
    return run(EmbedConfig(dataset="freihand", root=str(root), store=str(store), model="hcdg-tiny", batch_size=8,
                           chunk_rows=16, prompt_filter="^one ", workers=0, progress=False))


@pytest.fixture(scope="module")
def reference(synth_freihand, tmp_path_factory):
    """Uninterrupted stores (Zarr and HDF5), built in-process."""
    base = tmp_path_factory.mktemp("resume_ref")
    out = {}
    for name in ("ref.zarr", "ref.h5"):
        summary = _resume(synth_freihand, base / name)
        assert summary.complete_rows == 48
        out[name] = fs.array_digests(base / name)
    assert out["ref.zarr"] == out["ref.h5"]
    return out["ref.zarr"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["k.zarr", "k.h5"])
def test_sigkill_then_rerun_gives_a_bit_identical_store(reference, synth_freihand, tmp_path, name):
    store = tmp_path / name
    proc = subprocess.run(_cmd(synth_freihand, store, "--workers", "1"), env=_env(**{KILL_HOOK: "1"}),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (s,) = fs.store_info(store)["splits"]
    assert (s["complete_chunks"], s["complete_rows"], s["complete"]) == (1, 16, False)
    if name.endswith(".h5"):
        assert not store.exists() and fs.staging_path(store).is_dir()  # the .h5 is only ever written whole
    summary = _resume(synth_freihand, store)
    assert summary.embedded == 32 and not summary.text_computed  # only the missing chunks
    assert fs.array_digests(store) == reference
    if name.endswith(".h5"):
        assert not fs.staging_path(store).exists()


@pytest.mark.slow
def test_two_concurrent_shards_equal_one_process(reference, synth_freihand, tmp_path):
    store = tmp_path / "sh.zarr"
    procs = [subprocess.Popen(_cmd(synth_freihand, store, "--workers", "0", "--shard", f"{i}/2"), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "(shard 0/2)" in outs[0][0] and "(shard 1/2)" in outs[1][0]
    assert sum(int(o[0].split()[1]) for o in outs) == 48  # "embedded N images": disjoint shares
    assert fs.array_digests(store) == reference
