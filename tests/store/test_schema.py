"""Format versions (`store.schema`): today's writers stamp them, folders written before them
(built here byte for byte as the previous hcdg wrote them) keep loading, newer ones are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.store import schema
from hcdg.store.checkpoints import load_model_state, save_model
from hcdg.store.fingerprint import digest
from hcdg.store.run_model import load_run_model
from hcdg.store.runs import check_run, finished_run, prepare_run, read_run, recorded_identity

#: A train run.json of the previous format: no "schema", keys added since missing, Eq. 4 as "paper".
OLD_CONFIG = {"mode": "baseline", "width_mult": 0.125, "input_size": 32, "sigma_px": 10.0, "crop_scale": 1.0,
              "combine": "concat", "ratio": 0.6, "con_loss": "paper"}  # fmt: skip
OLD_HASH = digest(OLD_CONFIG)  # what hcdg recorded: the sha256 of the config as written


def _old_run(folder: Path) -> HandPoseNet:
    """A finished training run folder as hcdg wrote it before `store.schema` (run.json, model.json,
    model.safetensors, done.json); returns the network whose weights it holds."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "stage": "train", "config": OLD_CONFIG, "seed": 0, "config_hash": OLD_HASH, "argv": ["hcdg", "train"],
        "started_at": "2026-11-20T10:00:00+0000", "store_fingerprint": None,
    }))  # fmt: skip
    torch.manual_seed(0)
    net = HandPoseNet(ModelConfig(width_mult=0.125, input_size=32, branch2=False)).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps({  # no "output", no crop "gaussian", no "schema"
        "model_config": {"width_mult": 0.125, "input_size": 32, "clip_dim": 512, "combine": "concat",
                         "branch2": True, "embed_dim": 512, "proj_dim": 128, "leaky_slope": 0.01},
        "crop": {"input_size": 32, "sigma_px": 10.0, "crop_scale": 1.0},
        "config_hash": OLD_HASH, "step": 3, "format": "hcdg-checkpoint/1", "weights_sha256": sha,
    }))  # fmt: skip
    (folder / "done.json").write_text(json.dumps({"step": 3, "total_steps": 3, "config_hash": OLD_HASH}))
    return net


def test_todays_writers_stamp_the_schema(tmp_path):
    prepare_run(tmp_path / "run", stage="train", config={"mode": "baseline"}, seed=0)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["schema"] == schema.RUN_SCHEMA
    net = HandPoseNet(ModelConfig(width_mult=0.125, input_size=32, branch2=False))
    save_model(tmp_path / "run", net.state_dict(), {"model_config": {"width_mult": 0.125}})
    assert json.loads((tmp_path / "run" / "model.json").read_text())["schema"] == schema.MODEL_SCHEMA


def test_an_old_run_folder_loads_with_the_values_it_was_trained_with(tmp_path):
    net = _old_run(tmp_path / "old")
    record = read_run(tmp_path / "old")
    assert record["schema"] == schema.RUN_SCHEMA
    assert record["config"]["con_loss"] == "paper-literal" and record["config"]["heat_reduction"] == "mean"
    assert record["config"]["gaussian"] == "exp-d2-2s2" and record["config"]["target"] == "xyz"
    _, meta = load_model_state(tmp_path / "old")
    assert meta["crop"]["gaussian"] == "exp-d2-2s2" and meta["model_config"]["output"] == "xyz"
    loaded = load_run_model(tmp_path / "old")
    assert loaded.step == 3 and loaded.crop.gaussian == "exp-d2-2s2" and loaded.model.cfg.output == "xyz"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    side = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    with torch.no_grad():
        want = net.predict(x, side)["xyz_rel_norm"]
        got = loaded.model.predict(x, side)["xyz_rel_norm"]
    torch.testing.assert_close(got, want)  # the very weights the old folder holds
    run, done = finished_run(tmp_path / "old")
    assert run["config"]["con_loss"] == "paper-literal" and done["total_steps"] == 3
    assert json.loads((tmp_path / "old" / "run.json").read_text())["config"] == OLD_CONFIG  # read, never rewritten


def test_resuming_an_old_run_keeps_its_recorded_config_and_format(tmp_path):
    _old_run(tmp_path / "old")
    today = read_run(tmp_path / "old")["config"]  # what today's hcdg computes for the same run
    assert recorded_identity(tmp_path / "old", "train", today) == OLD_CONFIG  # so its config hash stays
    prepare_run(tmp_path / "old", stage="train", config=OLD_CONFIG, seed=0, resume=True,
                extra={"config_hash": OLD_HASH})  # fmt: skip
    raw = json.loads((tmp_path / "old" / "run.json").read_text())
    assert raw["config"] == OLD_CONFIG and raw["schema"] == 1 and len(raw["resumed_at"]) == 1
    assert read_run(tmp_path / "old")["config"] == today  # still upgraded on every read
    with pytest.raises(HcdgError, match="config key 'ratio': recorded 0.6, now 0.9"):
        check_run(tmp_path / "old", stage="train", config={**today, "ratio": 0.9}, seed=0, resume=True)


def test_a_done_record_of_another_config_is_not_a_finished_run(tmp_path):
    _old_run(tmp_path / "old")
    (tmp_path / "old" / "done.json").write_text(json.dumps({"total_steps": 3, "config_hash": "f" * 64}))
    assert finished_run(tmp_path / "old") is None
    assert finished_run(tmp_path) is None  # no run at all


@pytest.mark.parametrize("bad,match", [(schema.RUN_SCHEMA + 1, "newer hcdg"), ("two", "not a version"),
                                       (0, "not a version hcdg wrote")])  # fmt: skip
def test_run_records_of_unknown_versions_are_refused_in_one_line(tmp_path, bad, match):
    (tmp_path / "run.json").write_text(json.dumps({"schema": bad, "stage": "train", "config": {}, "seed": 0}))
    with pytest.raises(HcdgError, match=match) as err:
        read_run(tmp_path)
    assert "run.json" in str(err.value) and "\n" not in str(err.value)


def test_model_records_of_a_newer_version_are_refused(tmp_path):
    _old_run(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    (tmp_path / "old" / "model.json").write_text(json.dumps({**meta, "schema": schema.MODEL_SCHEMA + 1}))
    with pytest.raises(HcdgError, match=r"model\.json: written by a newer hcdg"):
        load_run_model(tmp_path / "old")


def test_each_chain_climbs_from_every_older_version():
    """A version bump without its upgrade step would leave old records unreadable."""
    for steps, current in ((schema.RUN_UPGRADES, schema.RUN_SCHEMA), (schema.MODEL_UPGRADES, schema.MODEL_SCHEMA),
                           (schema.RESULTS_UPGRADES, schema.RESULTS_SCHEMA)):  # fmt: skip
        assert sorted(steps) == list(range(schema.UNVERSIONED, current))


def test_an_old_run_json_fed_back_as_config_reads_as_today(tmp_path):
    from hcdg.stages.train_config import read_config_file

    _old_run(tmp_path / "old")
    keys = read_config_file(tmp_path / "old" / "run.json")
    assert keys["con_loss"] == "paper-literal" and keys["heat_reduction"] == "mean" and keys["arch"] == "hcdg"
