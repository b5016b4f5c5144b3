"""Reliability catalogue, non-finite numbers: refused as options, as annotations and as a training loss."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.aug_configs import ColorJitter
from hcdg.pipeline.errors import HcdgError
from hcdg.stages import train
from hcdg.store.atomic import atomic_write_json
from hcdg.store.checkpoints import list_checkpoints

TINY = dict(width_mult=0.25, input_size=64, batch_size=4, workers=0, progress=False, val_fraction=0.2)
FLAGS = ["--width-mult", "0.25", "--input-size", "64", "--batch-size", "4", "--workers", "0", "--no-progress"]


def _err(res):
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    return res.output.strip().splitlines()[-1]


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--lambda-con", "nan"), ("--ratio", "nan"),
                                         ("--margin", "-inf"), ("--lr-drop-factor", "nan")])
def test_non_finite_options_are_refused_before_any_write(tmp_path, flag, value):
    out = tmp_path / "run"
    err = _err(CliRunner().invoke(main, ["train", "--root", str(tmp_path), "--out", str(out), flag, value]))
    assert err == f"Error: {flag}: expected a finite number, got {float(value)!r}" and not out.exists()


def test_non_finite_values_in_toml_and_code_are_refused(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[geom]\nscale_range = [0.9, nan]\n")
    err = _err(CliRunner().invoke(main, ["train", "--root", str(tmp_path), "--out", str(tmp_path / "r"),
                                         "--config", str(toml)]))
    assert "geom.scale_range[1]: expected a finite number" in err
    with pytest.raises(HcdgError, match="--lr: expected a finite number"):
        train.TrainConfig(lr=float("inf"))
    with pytest.raises(HcdgError, match="--color.brightness"):
        train.TrainConfig(color=ColorJitter(brightness=float("nan")))


def test_toml_booleans_are_not_numbers_and_bad_betas_name_the_key(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("steps = true\n")
    assert _err(CliRunner().invoke(main, ["train", "--root", "x", "--out", "y", "--config", str(toml)])).endswith(
        "c.toml: steps: expected an integer, got True")
    toml.write_text('betas = [0.9, "x"]\n')
    assert "betas[1]: expected float" in _err(CliRunner().invoke(main, ["train", "--root", "x", "--out", "y",
                                                                         "--config", str(toml)]))


def _copy_root(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("rgb"))
    (dst / "training" / "rgb").symlink_to(src / "training" / "rgb")  # images shared, annotations copied
    return dst


@pytest.mark.parametrize("file, edit, needle", [
    ("training_xyz.json", lambda a: a[3][5].__setitem__(2, float("nan")), "xyz of pose 3 holds NaN or inf"),
    ("training_K.json", lambda a: a[2].__setitem__(0, [0.0, 0.0, 0.0]), "K of pose 2 is degenerate"),
    ("training_xyz.json", lambda a: a.__setitem__(1, [[0.1, 0.1, 0.5]] * 21), "xyz of pose 1 is degenerate"),
    ("training_scale.json", lambda a: a.__setitem__(0, float("inf")), "bone scale of pose 0 holds NaN or inf"),
])
def test_bad_annotations_fail_data_check_naming_the_file(synth_freihand, tmp_path, file, edit, needle):
    root = _copy_root(synth_freihand, tmp_path / "root")
    arr = json.loads((root / file).read_text())
    edit(arr)
    (root / file).write_text(json.dumps(arr))  # Python writes NaN/Infinity, as a careless tool would
    err = _err(CliRunner().invoke(main, ["data", "check", "--dataset", "freihand", "--root", str(root)]))
    assert needle in err and file in err
    res = CliRunner().invoke(main, ["train", "--root", str(root), "--out", str(tmp_path / "r"), "--mode", "baseline",
                                    "--steps", "1", *FLAGS])
    assert needle in _err(res) and not (tmp_path / "r").exists()


def test_rhd_nan_uv_is_refused(synth_rhd, tmp_path):
    import pickle

    root = tmp_path / "rhd"
    shutil.copytree(synth_rhd, root)
    anno = root / "evaluation" / "anno_evaluation.pickle"
    data = pickle.loads(anno.read_bytes())
    first = sorted(data)[1]
    data[first]["uv_vis"] = np.array(data[first]["uv_vis"], dtype=float)
    data[first]["uv_vis"][4, 0] = np.nan
    anno.write_bytes(pickle.dumps(data))
    err = _err(CliRunner().invoke(main, ["data", "check", "--dataset", "rhd", "--root", str(root)]))
    assert f"'uv_vis' of id {first} holds NaN or inf" in err


def test_training_stops_at_the_first_non_finite_loss(synth_freihand, tmp_path, monkeypatch):
    from hcdg.pipeline import losses

    real = losses.total_loss
    calls = {"n": 0}

    def nan_at_third(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(losses, "total_loss", nan_at_third)
    out = tmp_path / "run"
    cfg = train.TrainConfig(root=str(synth_freihand), out=str(out), mode="baseline", steps=4, checkpoint_every=1,
                            **TINY)
    with pytest.raises(HcdgError, match=r"^step 3: the loss is nan; stopped before the update \(the newest "
                                         r"checkpoint .*step-0*2 is the last good state\)"):
        train.run(cfg)
    assert [p.name for p in list_checkpoints(out)][-1].endswith("2") and not (out / "done.json").exists()


def test_json_written_is_strict(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"v": float("nan")})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_done_json_without_validation_holds_null(synth_freihand, tmp_path):
    out = tmp_path / "run"
    done = train.run(train.TrainConfig(root=str(synth_freihand), out=str(out), mode="baseline", steps=1,
                                       **{**TINY, "val_fraction": 0.0}))
    assert done["val_epe_mm"] is None
    text = (out / "done.json").read_text()
    assert "NaN" not in text and json.loads(text, parse_constant=lambda c: pytest.fail(c))["val_epe_mm"] is None
