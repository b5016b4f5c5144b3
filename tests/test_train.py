"""`hcdg train`: exact resume, no CLIP at training time, one-line errors for bad input."""

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.errors import HcdgError
from hcdg.stages import train
from hcdg.stages.train_loop import STOP_ENV
from hcdg.store.checkpoints import list_checkpoints, load_model_state

#: A narrow, small-input network and tiny batches (test size, same architecture).
TINY = dict(width_mult=0.25, input_size=64, batch_size=4, workers=0, progress=False, val_fraction=0.2)


def _cfg(root, out, store=None, **kw):
    return train.TrainConfig(root=str(root), out=str(out), store=None if store is None else str(store), **{**TINY, **kw})


def _curve(run_dir):
    df = pd.read_parquet(run_dir / "metrics.parquet")
    return df[["kind", "step", "epoch", "loss", "loss_heat", "loss_pose", "loss_con", "val_epe_mm"]]


def test_killed_and_resumed_run_reproduces_the_uninterrupted_run(synth_freihand, synth_freihand_store, tmp_path,
                                                                  monkeypatch):
    # ie+te exercises everything that must be restored: augmentation, prompt draws, feature
    # mixing, BatchNorm in the projection head, Adam moments. 10 of the 12 poses train
    # (40 images / 4 = 10 steps per epoch), so 11 steps also cross an epoch boundary.
    kw = dict(steps=11, checkpoint_every=3, log_every=1, val_every=4, mode="ie+te", ratio=0.6, lr_drops=(7,))
    full = _cfg(synth_freihand, tmp_path / "full", synth_freihand_store, **kw)
    train.run(full)

    cut = _cfg(synth_freihand, tmp_path / "cut", synth_freihand_store, **kw)
    monkeypatch.setenv(STOP_ENV, "8")  # dies after step 8; the newest checkpoint is step 6
    with pytest.raises(SystemExit):
        train.run(cut)
    monkeypatch.delenv(STOP_ENV)
    assert list_checkpoints(cut.out)[-1].name == "step-00000006"
    assert _curve(tmp_path / "cut")["step"].max() == 8  # rows 7, 8 exist and will be redone
    with pytest.raises(HcdgError, match="--resume"):
        train.run(cut)  # the folder holds this run: continuing needs --resume
    done = train.run(train.replace(cut, resume=True))

    a, b = _curve(tmp_path / "full"), _curve(tmp_path / "cut")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a[a.kind == "val"]["step"].tolist() == [4, 8, 10, 11]  # val_every, epoch end, run end
    wa, _ = load_model_state(tmp_path / "full")
    wb, _ = load_model_state(tmp_path / "cut")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert done["total_steps"] == 11 and json.loads((tmp_path / "cut" / "run.json").read_text())["resumed_at"]


def _forbid(*args, **kwargs):
    raise AssertionError("training must not build or run a CLIP model")


def test_training_builds_and_runs_no_clip_model(synth_freihand, synth_freihand_store, tmp_path, monkeypatch):
    import open_clip
    import open_clip.model

    from hcdg.pipeline import clip as hcdg_clip
    from hcdg.store import clip_weights

    for name in ("create_model", "create_model_and_transforms", "create_model_from_pretrained"):
        monkeypatch.setattr(open_clip, name, _forbid)
    for cls in (open_clip.model.CLIP, open_clip.model.CustomTextCLIP):
        monkeypatch.setattr(cls, "__init__", _forbid)
        monkeypatch.setattr(cls, "forward", _forbid)
        monkeypatch.setattr(cls, "encode_image", _forbid)
        monkeypatch.setattr(cls, "encode_text", _forbid)
    monkeypatch.setattr(hcdg_clip.ClipEncoder, "__init__", _forbid)
    monkeypatch.setattr(clip_weights, "load_encoder", _forbid)

    done = train.run(_cfg(synth_freihand, tmp_path / "run", synth_freihand_store, steps=3, mode="ie+te", log_every=1))
    df = _curve(tmp_path / "run")
    train_rows = df[df.kind == "train"]
    # Branch2 ran on the cached features: the contrastive term is present in every step.
    assert done["total_steps"] == 3 and (train_rows["loss_con"] != 0).all()


def _cli(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def _tiny_flags(root, out, store=None):
    flags = ["--root", root, "--out", out, "--width-mult", 0.25, "--input-size", 64, "--batch-size", 4,
             "--workers", 0, "--no-progress", "--val-fraction", 0.2]
    return flags + (["--store", store] if store else [])


def _one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    err = lines[-1]
    assert err.startswith("Error"), result.output
    for n in needles:
        assert n in err, err
    return err


def test_bad_input_gives_one_line_errors(synth_freihand, synth_freihand_store, tmp_path):
    flags = _tiny_flags(synth_freihand, tmp_path / "r", synth_freihand_store)
    _one_line_error(_cli(*flags, "--ratio", 1.5, "--steps", 1), "--ratio", "[0, 1]")
    _one_line_error(_cli(*flags, "--mode", "clip-only", "--steps", 1), "--mode")
    _one_line_error(_cli(*flags, "--con-negative", "e3", "--steps", 1), "--con-negative", "'e1', 'e2'")
    _one_line_error(_cli(*flags, "--split", "evaluation", "--steps", 1), "holds no split 'freihand/evaluation'")
    _one_line_error(_cli(*_tiny_flags(synth_freihand, tmp_path / "r"), "--steps", 1), "--store")
    _one_line_error(_cli(*flags, "--mode", "baseline", "--aug", "normal", "--steps", 1), "--aug normal")
    _one_line_error(_cli(*flags, "--mode", "te", "--aug", "normal", "--steps", 1), "--aug normal", "--mode te")
    _one_line_error(_cli(*flags, "--batch-size", 64, "--steps", 1), "--batch-size 64", "40 training samples")
    (tmp_path / "bad.toml").write_text("ratoi = 0.5\n")
    _one_line_error(_cli(*flags, "--config", tmp_path / "bad.toml"), "unknown key 'ratoi'")
    assert not (tmp_path / "r").exists()  # nothing half-written by any refused run


def test_store_of_other_data_is_refused(synth_freihand_store, tmp_path):
    from hcdg.stages.synth import SynthConfig
    from hcdg.stages.synth import run as synth_run

    other = tmp_path / "other"  # same layout and sample ids, different images (another seed)
    synth_run(SynthConfig(format="freihand", out=str(other), n=12, n_other=4, seed=7), progress=False)
    err = _one_line_error(_cli(*_tiny_flags(other, tmp_path / "r", synth_freihand_store), "--steps", 1),
                          "embedded from other files")
    assert "hcdg embed" in err


def test_folder_holding_a_different_run_is_refused(synth_freihand, synth_freihand_store, tmp_path):
    flags = _tiny_flags(synth_freihand, tmp_path / "r", synth_freihand_store) + ["--steps", 1]
    assert _cli(*flags, "--ratio", 0.6).exit_code == 0
    _one_line_error(_cli(*flags, "--ratio", 0.9), "holds a different run")
    _one_line_error(_cli(*flags, "--ratio", 0.9, "--resume"), "holds a different run")
    _one_line_error(_cli(*flags, "--ratio", 0.6), "--resume")
    # The same run with --resume is finished already: nothing to redo, same record back.
    ok = _cli(*flags, "--ratio", 0.6, "--resume")
    assert ok.exit_code == 0 and "trained 1 steps" in ok.output


@pytest.mark.parametrize(
    ("flags", "branch2", "positive", "ratio"),
    [
        ({"mode": "baseline"}, False, None, None),  # Table 4a/4b "Baseline"
        ({"mode": "ie"}, True, "clip", 1.0),  # Table 4a "IE"
        ({"mode": "ie+te", "ratio": 0.9}, True, "clip", 0.9),  # Table 4a "IE+TE 0.9"
        ({"mode": "te", "combine": "sum"}, True, "clip", 0.0),  # Table 4b "TE, Summation"
        ({"mode": "ie+te", "lambda_con": 0.001}, True, "clip", 0.6),  # Table 5
        ({"aug": "normal"}, True, "augment", None),  # Table 6 "Normal Augmentation"
    ],
)
def test_paper_rows_map_to_the_intended_network(flags, branch2, positive, ratio):
    from hcdg.stages.train_loop import build_model

    cfg = train.TrainConfig(**flags, width_mult=0.25, input_size=64)
    model = build_model(cfg, 512)
    assert (model.branch2 is not None) == branch2
    assert cfg.effective_ratio == ratio
    if branch2:
        assert model.cfg.positive == positive and model.cfg.combine == cfg.combine


def test_con_negative_flag_reaches_eq4(synth_freihand, synth_freihand_store, tmp_path, monkeypatch):
    from hcdg.pipeline import losses

    seen = []
    real = losses.contrastive_loss

    def spy(*args, **kwargs):
        seen.append(args[5] if len(args) > 5 else kwargs.get("negative"))
        return real(*args, **kwargs)

    monkeypatch.setattr(losses, "contrastive_loss", spy)
    for neg in ("e1", "e2"):
        train.run(_cfg(synth_freihand, tmp_path / neg, synth_freihand_store, steps=1, mode="ie+te", con_negative=neg))
    assert seen == ["e1", "e2"]


def test_a_run_folder_recorded_before_new_config_keys_resumes(synth_freihand, tmp_path, monkeypatch):
    # An older hcdg recorded no `preset`, `target`, `arch` (their values then: paper, xyz, hcdg).
    from hcdg.stages import train_loop

    real = train_loop.identity

    def older(cfg, fp, ids):
        return {k: v for k, v in real(cfg, fp, ids).items() if k not in ("preset", "target", "arch")}

    cfg = _cfg(synth_freihand, tmp_path / "old", mode="baseline", steps=2, checkpoint_every=1)
    monkeypatch.setattr(train_loop, "identity", older)
    train.run(cfg)
    monkeypatch.setattr(train_loop, "identity", real)
    record = json.loads((tmp_path / "old" / "run.json").read_text())
    del record["schema"]  # as the older hcdg wrote it: before format versions (store.schema)
    (tmp_path / "old" / "run.json").write_text(json.dumps(record))
    recorded = record["config"]
    assert "arch" not in recorded
    done = train.run(train.replace(cfg, steps=4, resume=True))
    assert done["total_steps"] == 4
    assert json.loads((tmp_path / "old" / "run.json").read_text())["config"] == recorded  # kept as recorded
    # a genuinely different config is still refused, naming the key
    with pytest.raises(HcdgError, match="config key 'lr'"):
        train.run(train.replace(cfg, steps=6, resume=True, lr=1e-3))
