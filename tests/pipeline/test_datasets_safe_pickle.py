"""The restricted unpickler: plain data and numpy arrays load; anything else is refused unexecuted."""

import os
import pickle
import struct

import numpy as np
import pytest

from hcdg.pipeline.datasets.safe_pickle import load_pickle, loads
from hcdg.pipeline.errors import HcdgError


class _SystemCall:
    """Unpickling this runs `os.system(cmd)` under a plain `pickle.load`."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_crafted_os_system_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "anno_evaluation.pickle"
    path.write_bytes(pickle.dumps({0: _SystemCall(f"touch {marker}")}, protocol=2))
    with pytest.raises(HcdgError) as info:
        load_pickle(path)
    msg = str(info.value)
    assert str(path) in msg
    assert ("posix.system" in msg) or ("os.system" in msg)
    assert "\n" not in msg
    assert not marker.exists()


@pytest.mark.parametrize("target", ["builtins.eval", "subprocess.Popen", "numpy.load", "builtins.getattr"])
def test_other_globals_are_refused(target):
    module, name = target.rsplit(".", 1)
    data = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nq\x00."
    with pytest.raises(HcdgError, match=rf"refused to unpickle global {module}\.{name}"):
        loads(data, source="x.pickle")


def _py2_numpy_pickle(arr: np.ndarray, key: int) -> bytes:
    """What Python 2 + numpy 1.x write for `{key: {'xyz': arr}}` at protocol 2 (as RHD's files).

    Python 2 `str` is SHORT_BINSTRING ('U'); globals name `numpy.core.multiarray`.
    """
    assert arr.dtype == np.float32 and arr.flags.c_contiguous
    raw = arr.tobytes()
    s = lambda b: b"U" + bytes([len(b)]) + b  # noqa: E731 - py2 str opcode
    out = b"\x80\x02}K" + bytes([key]) + b"}" + s(b"xyz")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
    out += b"(K\x01" + b"K" + bytes([arr.shape[0]]) + b"K" + bytes([arr.shape[1]]) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"f4") + b"K\x00K\x01\x87R"
    out += b"(K\x03" + s(b"<") + b"NNNJ" + struct.pack("<i", -1) + b"J" + struct.pack("<i", -1) + b"K\x00tb"
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tbss."
    return out


def test_python2_numpy1_pickle_loads_with_int_keys():
    arr = (np.arange(42 * 3, dtype=np.float32).reshape(42, 3) / 7).astype(np.float32)
    data = _py2_numpy_pickle(arr, key=7)
    # sanity: the hand-written stream is what the standard unpickler reads too
    assert np.array_equal(pickle.loads(data, encoding="latin1")[7]["xyz"], arr)
    out = loads(data)
    assert list(out) == [7]
    got = out[7]["xyz"]
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert np.array_equal(got, arr)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_modern_numpy_pickles_round_trip(protocol):
    data = {
        3: {"xyz": np.random.default_rng(0).normal(size=(42, 3)).astype(np.float32),
            "uv_vis": np.asfortranarray(np.ones((42, 3))), "K": np.eye(3),
            "s": np.float32(1.5), "n": np.int64(4), "b": b"\x00\xff", "t": ("a", None, True, 2.5)},
    }
    out = loads(pickle.dumps(data, protocol=protocol))
    assert out.keys() == data.keys()
    for k, v in data[3].items():
        if isinstance(v, np.ndarray):
            assert out[3][k].dtype == v.dtype and np.array_equal(out[3][k], v)
        else:
            assert out[3][k] == v and type(out[3][k]) is type(v)


def test_object_arrays_are_refused():
    data = pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=2)
    with pytest.raises(HcdgError, match="object dtype"):
        loads(data, source="obj.pickle")


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    bad = tmp_path / "cut.pickle"
    bad.write_bytes(pickle.dumps({0: np.zeros(3)}, protocol=2)[:-5])
    with pytest.raises(HcdgError, match="cut.pickle: not a readable annotation pickle"):
        load_pickle(bad)
    with pytest.raises(HcdgError, match="nope.pickle: cannot read"):
        load_pickle(tmp_path / "nope.pickle")
