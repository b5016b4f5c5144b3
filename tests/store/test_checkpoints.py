"""Checkpoints (safetensors + JSON, no pickle) and the metrics log of a run folder."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from hcdg.pipeline.errors import HcdgError
from hcdg.store.checkpoints import (
    STATE_FILE,
    WEIGHTS_FILE,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    save_model,
)
from hcdg.store.metrics_log import METRICS_FILE, MetricsLog, read_metrics


def _model_and_adam(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))


def _step(model, opt, x):
    loss = model(x).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_roundtrip_restores_model_adam_and_rng_exactly(tmp_path):
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    model, opt = _model_and_adam()
    for _ in range(3):
        _step(model, opt, x)
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    ck = save_checkpoint(tmp_path, step=3, epoch=0, model_state=model.state_dict(),
                         optimizer_state=opt.state_dict(), cfg_hash="h1")
    # Continue the original: these are the numbers a restored run must reproduce.
    expect_rng = (random.random(), float(np.random.rand()), float(torch.rand(())))
    expect_losses = [_step(model, opt, x) for _ in range(2)]

    model2, opt2 = _model_and_adam(seed=123)  # different init: everything must come from the file
    loaded = load_checkpoint(ck, expect_config_hash="h1")
    model2.load_state_dict(loaded.model_state)
    opt2.load_state_dict(loaded.optimizer_state)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)  # scramble, then restore
    loaded.restore_rng()
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expect_rng
    assert [_step(model2, opt2, x) for _ in range(2)] == expect_losses
    assert loaded.step == 3 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert int(model2[1].num_batches_tracked) == 5


def test_tampered_weights_refused_and_never_unpickled(tmp_path, monkeypatch):
    model, opt = _model_and_adam()
    ck = save_checkpoint(tmp_path, step=1, epoch=0, model_state=model.state_dict(),
                         optimizer_state=opt.state_dict(), cfg_hash="h")
    weights = ck / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip one bit of the last tensor byte: still a valid safetensors file
    weights.write_bytes(bytes(data))

    def no_pickles(*a, **k):
        raise AssertionError("torch.load must never be called on a checkpoint")

    monkeypatch.setattr(torch, "load", no_pickles)
    with pytest.raises(HcdgError, match=r"weights\.safetensors: sha256 .* does not match .*refusing"):
        load_checkpoint(ck, expect_config_hash="h")
    # A pickle planted in place of the weights is refused the same way (never unpickled).
    weights.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(HcdgError, match="does not match"):
        load_checkpoint(ck)


def test_config_mismatch_and_corrupt_state_refused(tmp_path):
    model, opt = _model_and_adam()
    ck = save_checkpoint(tmp_path, step=2, epoch=0, model_state=model.state_dict(),
                         optimizer_state=opt.state_dict(), cfg_hash="abc")
    with pytest.raises(HcdgError, match="different training config"):
        load_checkpoint(ck, expect_config_hash="other")
    state = json.loads((ck / STATE_FILE).read_text())
    state["weights_sha256"] = "0" * 64  # a state edited to vouch for other weights
    (ck / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(HcdgError, match="does not match"):
        load_checkpoint(ck)
    (ck / STATE_FILE).write_text("{not json")
    with pytest.raises(HcdgError, match="not valid JSON"):
        load_checkpoint(ck)


def test_newest_complete_checkpoint_wins_and_old_ones_are_pruned(tmp_path):
    model, opt = _model_and_adam()
    for step in (5, 10, 15):
        save_checkpoint(tmp_path, step=step, epoch=0, model_state=model.state_dict(),
                        optimizer_state=opt.state_dict(), cfg_hash="h", keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000010", "step-00000015"]
    # A half-written checkpoint (killed mid-write) is a hidden temp folder or lacks state.json.
    (tmp_path / "checkpoints" / ".tmp-step-00000020.x").mkdir()
    (tmp_path / "checkpoints" / "step-00000025").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-00000015"


def test_final_model_verified(tmp_path):
    model, _ = _model_and_adam()
    save_model(tmp_path, model.state_dict(), {"model_config": {"width_mult": 0.25}})
    state, meta = load_model_state(tmp_path)
    assert meta["model_config"] == {"width_mult": 0.25}
    assert torch.equal(state["0.weight"], model.state_dict()["0.weight"])
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(HcdgError, match="does not match"):
        load_model_state(tmp_path)


def test_metrics_log_readable_after_every_append_and_truncated_on_resume(tmp_path):
    log = MetricsLog(tmp_path)
    assert pd.read_parquet(tmp_path / METRICS_FILE).empty
    for step in range(1, 6):
        log.append([{"kind": "train", "step": step, "epoch": 0, "loss": 1.0 / step, "lr": 1e-4}])
        df = pd.read_parquet(tmp_path / METRICS_FILE)
        assert list(df["step"]) == list(range(1, step + 1))
    log.append([{"kind": "val", "step": 5, "epoch": 0, "val_epe_mm": 12.5}])
    assert not list(tmp_path.glob(".tmp-*"))
    resumed = MetricsLog(tmp_path, resume_step=3)  # steps 4, 5 are redone after a resume from step 3
    df = read_metrics(tmp_path)
    assert list(df["step"]) == [1, 2, 3] and df["loss"].tolist() == [1.0, 0.5, 1.0 / 3]
    assert len(resumed.rows) == 3
    with pytest.raises(KeyError, match="unknown column"):
        resumed.append([{"kind": "train", "step": 4, "typo": 1.0}])


def test_incomplete_state_or_non_object_model_json_is_one_clear_error(tmp_path):
    # A state.json of the right format but missing fields, and a model.json that is not an object,
    # used to surface as a KeyError / AttributeError traceback.
    model, opt = _model_and_adam()
    ck = save_checkpoint(tmp_path, step=1, epoch=0, model_state=model.state_dict(),
                         optimizer_state=opt.state_dict(), cfg_hash="h")
    (ck / STATE_FILE).write_text(json.dumps({"format": "hcdg-checkpoint/1", "config_hash": "h"}))
    with pytest.raises(HcdgError, match="lacks .*weights_sha256"):
        load_checkpoint(ck, expect_config_hash="h")
    save_model(tmp_path, model.state_dict(), {})
    (tmp_path / "model.json").write_text("[1]")
    with pytest.raises(HcdgError, match="expected a JSON object"):
        load_model_state(tmp_path)
