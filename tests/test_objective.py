"""One training objective: the solo loop, a shared-batch sweep and the step benchmark compute the same loss."""

import copy
import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch

from hcdg.pipeline import objective
from hcdg.stages import train, train_shared
from hcdg.stages.train_config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def _bench_step():
    spec = importlib.util.spec_from_file_location("bench_step", ROOT / "benchmarks" / "bench_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _spy(monkeypatch):
    """Record every loss_terms call's model state (before the step), batch, tables, step and terms."""
    calls = []
    real = objective.loss_terms

    def spy(cfg, model, batch, tables, step, *a, **kw):
        state = copy.deepcopy(model.state_dict())
        total, terms = real(cfg, model, batch, tables, step, *a, **kw)
        calls.append({"state": state, "batch": {k: v.clone() for k, v in batch.items()}, "tables": tables,
                      "step": step, "terms": terms.clone()})
        return total, terms

    monkeypatch.setattr(objective, "loss_terms", spy)
    return calls


def test_solo_loop_shared_sweep_and_bench_step_compute_one_loss(synth_freihand, synth_freihand_store, tmp_path,
                                                                 monkeypatch):
    cfg = TrainConfig(store=str(synth_freihand_store), root=str(synth_freihand), out=str(tmp_path / "solo"), steps=2,
                      width_mult=0.125, input_size=32, batch_size=4, workers=0, progress=False, val_fraction=0.2,
                      log_every=1)
    calls = _spy(monkeypatch)
    train.run(cfg)
    solo = list(calls)
    assert [c["step"] for c in solo] == [0, 1] and solo[0]["tables"] is not None  # ie+te: CLIP tables gathered
    # the run folder keeps its resolved config in the form --config reads; so does its run.json
    from hcdg.stages.train_config import CONFIG_FILE

    assert TrainConfig.resolve(toml=tmp_path / "solo" / CONFIG_FILE) == cfg
    assert TrainConfig.resolve(toml=tmp_path / "solo" / "run.json") == cfg

    calls.clear()
    (res,) = train_shared.train_group([train.replace(cfg, out=str(tmp_path / "shared"))])
    assert isinstance(res, dict)
    for a, b in zip(solo, calls, strict=True):
        assert torch.equal(a["terms"], b["terms"])  # same batch, same draws: bit-equal terms
    solo_rows = pd.read_parquet(tmp_path / "solo" / "metrics.parquet").query("kind == 'train'")
    assert solo_rows["loss"].tolist() == pytest.approx(solo[0]["terms"][:1].tolist() + solo[1]["terms"][:1].tolist())

    # the benchmark's step: the same network (at the solo run's state), the same batch and tables, step 1
    bench = _bench_step()
    first = solo[1]
    v = bench.Variant("ie+te", cfg, torch.device("cpu"), tables=first["tables"])
    v.model.load_state_dict(first["state"])
    loss = v.loss(first["batch"], first["step"])
    assert float(loss.detach()) == pytest.approx(float(first["terms"][0]), rel=1e-6)
    # and its default variant config is the default objective
    assert bench.variant_config("ie+te", 8, 1.0, 256) == TrainConfig()


def test_loss_terms_follow_the_settings_they_read():
    """Eq. 1 from its terms; the L_con form and prompt draw are the config's; a baseline has no L_con."""
    from hcdg.pipeline.model import HandPoseNet

    bench = _bench_step()
    cfg = TrainConfig(width_mult=0.125, input_size=32, batch_size=4)
    batch = bench._batch(4, 32, torch.device("cpu"), torch.Generator().manual_seed(0))
    batch["feat_row"] = batch["feat_row"] % 10
    g = torch.Generator().manual_seed(1)
    tables = objective.FeatureTables(torch.randn(10, 512, generator=g), torch.randn(7, 512, generator=g))
    torch.manual_seed(0)
    model = HandPoseNet(cfg.model_config(512)).train()
    total, terms = objective.loss_terms(cfg, model, batch, tables, step=3)
    total = total.detach()
    heat, pose, con = terms[1:4].tolist()
    assert float(total) == pytest.approx(cfg.lambda_heat * heat + cfg.lambda_pose * pose + cfg.lambda_con * con)
    assert torch.isfinite(terms[4:]).all()  # the Branch2 diagnostics
    hinge = objective.loss_terms(train.replace(cfg, con_loss="hinge"), model, batch, tables, step=3)[0].detach()
    assert float(hinge) != float(total)
    other_step = objective.loss_terms(cfg, model, batch, tables, step=4)[0].detach()  # other prompt ids
    assert float(other_step) != float(total)
    assert torch.equal(objective.prompt_ids(cfg, 3, n_prompts=7), objective.prompt_ids(cfg, 3, n_prompts=7))
    halves = [objective.prompt_ids(cfg, 3, n_prompts=7, rank=r, world=2) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), objective.prompt_ids(cfg, 3, n_prompts=7))  # DDP ranks slice one draw

    base = train.replace(cfg, mode="baseline")
    torch.manual_seed(0)
    bmodel = HandPoseNet(base.model_config(None)).train()
    btotal, bterms = objective.loss_terms(base, bmodel, batch, None, step=3)
    btotal = btotal.detach()
    assert float(bterms[3]) == 0.0 and torch.isnan(bterms[4:]).all()
    assert float(btotal) == pytest.approx(float(bterms[1] + bterms[2]))
