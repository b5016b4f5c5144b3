"""Start-up and memory at FreiHAND size: float16 tables with only gathered rows converted,
skipped rows from the store's validity array, torch-free CLI import, a GC-paused JSON parse,
the vectorised mean pose."""

import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hcdg.pipeline import mixing
from hcdg.pipeline.datasets import common, open_dataset
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.train_data import mean_pose, rel_norm_pose
from hcdg.stages import train, train_loop
from hcdg.store import features


@pytest.mark.parametrize("ratio", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("normalize", [True, False])
def test_float16_tables_give_exactly_their_float32_conversion(ratio, normalize):
    g = torch.Generator().manual_seed(0)
    img16 = torch.randn(50, 8, generator=g).half()
    txt16 = torch.randn(7, 8, generator=g).half()
    rows, pids = torch.tensor([3, 49, 0, 3]), torch.tensor([6, 0, 2, 2])
    got = mixing.gather_mixed(img16, txt16, rows, pids, ratio, normalize)
    want = mixing.gather_mixed(img16.float(), txt16.float(), rows, pids, ratio, normalize)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    if ratio == 1.0:  # mode ie: no text table
        assert torch.equal(mixing.gather_mixed(img16, None, rows, None, 1.0, normalize), want)


def test_training_keeps_the_store_dtype_and_reads_skipped_rows_from_valid(synth_freihand, synth_freihand_store,
                                                                          monkeypatch):
    real = features.load_split_table

    def one_skipped(*a, **kw):
        ids, feats, valid = real(*a, **kw)
        valid = valid.copy()
        valid[ids.index("00000005")] = False  # as `hcdg embed --skip-corrupt` records an unreadable image
        return ids, feats, valid

    monkeypatch.setattr(features, "load_split_table", one_skipped)
    monkeypatch.setattr(torch, "isfinite", lambda *a: pytest.fail("the table must not be scanned with isfinite"))
    cfg = train.TrainConfig(root=str(synth_freihand), out="o", store=str(synth_freihand_store), val_fraction=0.2,
                            batch_size=4)
    data = train_loop.open_data(cfg, torch.device("cpu"))
    assert data.img_table.dtype == torch.float16  # hcdg embed's default dtype, kept on the device
    assert data.txt_table.dtype == torch.float32
    assert data.skipped.tolist() == [5]
    train_idx, val_idx, _, _ = train_loop.plan(cfg, data, 1)
    assert 5 not in train_idx and 5 not in val_idx


def test_cli_and_store_commands_import_without_torch(tmp_path):
    code = "import sys, hcdg.cli, hcdg.stages.store_cmds, hcdg.store.features; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_json_arrays_parse_with_the_collector_paused_and_restored(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([[1.0, 2.0], [3.0, 4.0]]))
    assert gc.isenabled()
    assert common.read_json_array(path, "pairs", (-1, 2)).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert gc.isenabled()
    path.write_text("[[1.0, 2.0], [3.0")
    with pytest.raises(HcdgError, match=r"a\.json: cannot read pairs"):
        common.read_json_array(path, "pairs", (-1, 2))
    assert gc.isenabled()
    gc.disable()
    try:
        path.write_text("[1, 2]")
        common.read_json_array(path, "pairs", (2,))
        assert not gc.isenabled()  # a caller's paused collector stays paused
    finally:
        gc.enable()


@pytest.mark.parametrize("fixture", ["synth_freihand", "synth_rhd"])
def test_vectorised_mean_pose_equals_the_per_sample_mean(fixture, request):
    root = request.getfixturevalue(fixture)
    reader = open_dataset("freihand", root, "training") if fixture == "synth_freihand" else \
        open_dataset("rhd", root, "training")
    idx = np.arange(0, len(reader), 3)
    loop = np.mean([rel_norm_pose(reader.annotation(int(i)).xyz, reader.annotation(int(i)).side) for i in idx], axis=0)
    np.testing.assert_allclose(mean_pose(reader, idx), loop, rtol=0, atol=1e-6)
    if fixture == "synth_rhd":
        assert not hasattr(reader, "poses_xyz")
        assert any(reader.annotation(int(i)).side == "left" for i in idx)  # the mirroring is exercised
    else:
        xyz, left = reader.poses_xyz(idx)
        assert np.array_equal(xyz[1], reader.annotation(int(idx[1])).xyz) and not left.any()
    assert mean_pose(reader, []).shape == (21, 3)
