"""Run folders record provenance and refuse to mix runs."""

import json

import pytest

from hcdg.pipeline.errors import HcdgError
from hcdg.store.runs import prepare_run, read_run


def test_run_folder_records_provenance_and_refuses_mixing(tmp_path):
    run = tmp_path / "run"
    prepare_run(run, stage="train", config={"ratio": 0.6}, seed=3)
    rec = read_run(run)
    assert rec["stage"] == "train" and rec["config"] == {"ratio": 0.6} and rec["seed"] == 3
    assert rec["versions"]["torch"] and rec["versions"]["python"]
    # Same run again without --resume: refused; with resume: accepted and recorded.
    with pytest.raises(HcdgError, match="--resume"):
        prepare_run(run, stage="train", config={"ratio": 0.6}, seed=3)
    prepare_run(run, stage="train", config={"ratio": 0.6}, seed=3, resume=True)
    assert len(json.loads((run / "run.json").read_text())["resumed_at"]) == 1
    # A different config in the same folder: refused even with resume.
    with pytest.raises(HcdgError, match="different run"):
        prepare_run(run, stage="train", config={"ratio": 0.9}, seed=3, resume=True)


def test_non_run_folder_refused(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(HcdgError, match="not an hcdg run folder"):
        prepare_run(tmp_path, stage="train", config={}, seed=0)
    with pytest.raises(HcdgError, match="not a run folder"):
        read_run(tmp_path)


def test_non_object_run_json_is_one_clear_error(tmp_path):
    (tmp_path / "run.json").write_text("[1, 2]")  # valid JSON, not a run record: was an AttributeError
    with pytest.raises(HcdgError, match="expected a JSON object"):
        read_run(tmp_path)
    with pytest.raises(HcdgError, match="expected a JSON object"):
        prepare_run(tmp_path, stage="train", config={}, seed=0, resume=True)


def test_old_train_records_read_with_the_loss_readings_they_were_trained_with():
    from hcdg.store.schema import LEGACY_TRAIN_VALUES, RUN_SCHEMA, upgrade_run

    old = {"stage": "train", "config": {"mode": "ie+te", "con_loss": "paper"}}  # schema 1: no "schema" key
    rec = upgrade_run(old)
    cfg = rec["config"]
    assert cfg["heat_reduction"] == "mean" and cfg["pose_reduction"] == "mean" and cfg["gaussian"] == "exp-d2-2s2"
    assert cfg["con_loss"] == "paper-literal"  # the old name of Eq. 4 as printed
    assert rec["schema"] == RUN_SCHEMA and old["config"] == {"mode": "ie+te", "con_loss": "paper"}  # input kept
    new = {"schema": RUN_SCHEMA, "stage": "train", "config": {"mode": "ie+te"}}
    assert upgrade_run(new)["config"] == {"mode": "ie+te"}  # today's records are read as written
    assert set(LEGACY_TRAIN_VALUES) - set(upgrade_run({"stage": "train", "config": {}})["config"]) == set()
    assert upgrade_run({"stage": "embed", "config": {"a": 1}})["config"] == {"a": 1}
