"""Results parquet: schema round trip, summaries, many-run loading, loss curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hcdg.pipeline import metrics
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.protocols import ProtocolResult
from hcdg.store import results
from hcdg.store.runs import find_run_dirs, prepare_run
from hcdg.store.schema import PA_FORMAT_KEY, PARQUET_SCHEMA_KEY, RESULTS_SCHEMA

CONFIG = {"mode": "ie+te", "ratio": 0.6, "combine": "concat", "lambda_con": 0.1, "con_loss": "paper-literal",
          "aug": "clip", "betas": [0.9, 0.999], "geom": {"rotation_deg": 30.0}}  # fmt: skip


def _protocol_results(n: int, seed: int = 0) -> list[ProtocolResult]:
    rng = np.random.default_rng(seed)
    gt = rng.normal(scale=0.05, size=(n, 21, 3)) + [0, 0, 0.5]
    out = []
    for name in ("2.5d-gtroot-gtbone", "rr-gtscale"):
        pred = gt + rng.normal(scale=0.01, size=gt.shape)
        out.append(ProtocolResult(name, "wrist", pred, gt, metrics.joint_errors_mm(pred, gt)))
    return out


def _frame(n: int = 5, run: str = "r1", target: str = "rhd", seed: int = 0, **kw) -> pd.DataFrame:
    vis = np.ones((n, 21), bool)
    vis[0, :5] = False
    return results.results_frame(
        run=run, target=target, split="evaluation", sample_ids=[f"{i:05d}" for i in range(n)],
        results=_protocol_results(n, seed), visible=vis, config=CONFIG, **kw,
    )  # fmt: skip


def test_flatten_config_nested_and_lists():
    flat = results.flatten_config(CONFIG)
    assert flat["cfg.mode"] == "ie+te" and flat["cfg.ratio"] == 0.6
    assert flat["cfg.geom.rotation_deg"] == 30.0
    assert flat["cfg.betas"] == "[0.9, 0.999]"


def test_random_weights_found_anywhere_in_the_record():
    assert results.random_weights_of({"config": {}, "store_fingerprint": {"clip": {"random_weights": True}}})
    assert not results.random_weights_of({"config": {"random_weights": False}})
    assert not results.random_weights_of({})
    assert results.random_weights_of({"fp": {"encoder": {"weights": {"kind": "random"}}}})
    assert not results.random_weights_of({"fp": {"encoder": {"weights": {"kind": "openai"}}}})


def test_round_trip_keeps_schema_and_values(tmp_path):
    frame = _frame(extra={"mirrored": [True] * 5})
    rpath, spath = results.write_results(tmp_path, "rhd", frame)
    assert rpath == tmp_path / "eval" / "rhd.parquet" and spath == tmp_path / "eval" / "rhd-summary.parquet"
    schema = pq.read_schema(rpath)
    for name, typ in results.RESULT_SCHEMA.items():
        assert schema.field(name).type == typ, name
    assert schema.metadata[b"hcdg.schema"] == str(RESULTS_SCHEMA).encode()  # the format version
    back = results.read_results(rpath)
    assert len(back) == 10 and set(back["protocol"]) == {"2.5d-gtroot-gtbone", "rr-gtscale"}
    assert back["cfg.mode"].iloc[0] == "ie+te" and back["cfg.geom.rotation_deg"].iloc[0] == 30.0
    assert back["mirrored"].all()
    # recompute the errors from the stored coordinates (float32 metres -> < 1e-3 mm)
    pred, gt = results.xyz_array(back["pred_xyz_m"]), results.xyz_array(back["gt_xyz_m"])
    assert pred.shape == (10, 21, 3)
    np.testing.assert_allclose(metrics.joint_errors_mm(pred, gt), results.errors_array(back), atol=1e-3)
    np.testing.assert_allclose(back["epe_mm"], results.errors_array(back).mean(axis=1))
    vis = results.visible_array(back)
    assert vis.shape == (10, 21) and not vis[0, :5].any() and vis[0, 5:].all()


def test_summary_matches_metrics(tmp_path):
    frame = _frame()
    _, spath = results.write_results(tmp_path, "rhd", frame)
    summary = results.read_summary(spath)
    assert len(summary) == 4  # 2 protocols x 1 root x {all, visible}
    row = summary[(summary.protocol == "rr-gtscale") & (summary.joints == "visible")].iloc[0]
    sub = frame[frame.protocol == "rr-gtscale"]
    err, vis = results.errors_array(sub), results.visible_array(sub)
    assert row["epe_mean_mm"] == pytest.approx(metrics.epe_mean_mm(err, vis))
    assert row["auc_20_50_hand3d"] == pytest.approx(metrics.auc_20_50_hand3d(err, vis))
    assert row["n_samples"] == 5 and len(row["pck"]) == 100
    all_row = summary[(summary.protocol == "rr-gtscale") & (summary.joints == "all")].iloc[0]
    assert all_row["epe_mean_mm"] == pytest.approx(err.mean())
    assert all_row["cfg.ratio"] == 0.6


def test_writing_one_target_leaves_the_other_alone(tmp_path):
    results.write_results(tmp_path, "rhd", _frame(target="rhd"))
    results.write_results(tmp_path, "stb", _frame(target="stb"))
    before = (tmp_path / "eval" / "rhd.parquet").read_bytes()
    results.write_results(tmp_path, "stb", _frame(target="stb", seed=3))
    assert (tmp_path / "eval" / "rhd.parquet").read_bytes() == before
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "eval").iterdir())


def test_missing_column_is_refused(tmp_path):
    with pytest.raises(HcdgError, match="missing column"):
        results.write_results(tmp_path, "rhd", _frame().drop(columns=["err_mm_07"]))
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(HcdgError, match="not an hcdg results table"):
        results.read_results(tmp_path / "x.parquet")


def test_load_results_concatenates_runs_and_expands_sweeps(tmp_path):
    sweep = tmp_path / "sweep"
    for i, name in enumerate(("ratio0.6", "ratio0.9")):
        run = prepare_run(sweep / name, stage="train", config=CONFIG, seed=i)
        results.write_results(run, "rhd", _frame(run=name, seed=i))
    lone = prepare_run(tmp_path / "lone", stage="train", config=CONFIG, seed=0)  # no results yet
    df = results.load_results([sweep, lone])
    assert len(df) == 20 and set(df["run"]) == {"ratio0.6", "ratio0.9"}
    assert set(df["run_dir"]) == {str(sweep / "ratio0.6"), str(sweep / "ratio0.9")}
    assert results.run_columns(sweep / "ratio0.9")["cfg.ratio"] == 0.6
    with pytest.raises(HcdgError, match="holds no run folder"):
        find_run_dirs([tmp_path / "sweep" / "ratio0.6" / "eval"])
    assert results.load_results([lone]).empty


def test_loss_curves_missing_partial_and_damaged(tmp_path):
    assert results.read_loss_curves(tmp_path) is None
    pd.DataFrame({"step": [20, 10], "loss": [0.5, 1.0]}).to_parquet(tmp_path / "metrics.parquet")
    curves = results.read_loss_curves(tmp_path)
    assert list(curves["step"]) == [10, 20] and curves["val_epe_mm"].isna().all()
    (tmp_path / "metrics.parquet").write_bytes(b"not parquet")
    with pytest.raises(HcdgError, match="not a readable parquet"):
        results.read_loss_curves(tmp_path)


def test_old_pa_files_read_as_pa_proper_plus_recomputed_toolbox_pa(tmp_path):
    """Files written before `pa` became the toolbox's alignment (no hcdg.pa metadata): their
    proper-rotation `pa` rows are `pa-proper`, and toolbox `pa` rows are recomputed."""
    from hcdg.pipeline import protocols

    rng = np.random.default_rng(3)
    gt = rng.normal(scale=0.04, size=(6, 21, 3)) + [0, 0, 0.5]
    rel = (gt - gt[:, :1]) * np.array([1.0, 1.0, -1.0]) * 20 + rng.normal(scale=0.05, size=gt.shape)
    old_pa = protocols.pa(rel, gt, allow_reflection=False)
    frame = results.results_frame(
        run="old", target="rhd", split="evaluation", sample_ids=[str(i) for i in range(6)],
        results=[ProtocolResult("pa", "wrist", old_pa.pred_xyz_m, old_pa.gt_xyz_m, old_pa.errors_mm)], config=CONFIG,
    )  # fmt: skip
    rpath, spath = results.write_results(tmp_path, "rhd", frame)
    _as_schema_1(rpath, spath, keep=())  # as hcdg wrote them before the toolbox `pa`
    back = results.read_results(rpath)
    assert sorted(set(back.protocol)) == ["pa", "pa-proper"] and len(back) == 12
    proper = back[back.protocol == "pa-proper"]
    np.testing.assert_allclose(results.errors_array(proper), old_pa.errors_mm, atol=1e-9)
    toolbox = back[back.protocol == "pa"]
    want = protocols.pa(rel, gt).errors_mm
    np.testing.assert_allclose(results.errors_array(toolbox), want, atol=1e-3)
    assert results.errors_array(toolbox).mean() < results.errors_array(proper).mean() - 1.0
    assert set(results.read_summary(spath).protocol) == {"pa-proper"}  # an old summary cannot re-align...
    assert set(results.target_summary(tmp_path, "rhd").protocol) == {"pa", "pa-proper"}  # ...so it is redone
    # files hcdg writes now carry the format version and are read as they are
    rpath2, _ = results.write_results(tmp_path / "new", "rhd", frame)
    assert set(results.read_results(rpath2).protocol) == {"pa"}
    # a schema-1 file written after the toolbox `pa` (it carries the marker) keeps its rows
    rpath3, spath3 = results.write_results(tmp_path / "mid", "rhd", frame)
    _as_schema_1(rpath3, spath3, keep=(PA_FORMAT_KEY,))
    assert set(results.read_results(rpath3).protocol) == {"pa"}


def _as_schema_1(*paths, keep):
    """Rewrite parquet files as hcdg wrote them before `store.schema` (no version; `keep` metadata kept)."""
    for path in paths:
        table = pq.read_table(path)
        meta = {k: v for k, v in (table.schema.metadata or {}).items()
                if k not in (PARQUET_SCHEMA_KEY, PA_FORMAT_KEY) or k in keep}  # fmt: skip
        pq.write_table(table.replace_schema_metadata(meta), path)


def test_old_protocol_names_read_as_todays_and_newer_files_are_refused(tmp_path):
    frame = _frame()
    frame["protocol"] = frame["protocol"].replace({"2.5d-gtroot-gtbone": "gtroot-2.5d"})  # its name before
    rpath, spath = results.write_results(tmp_path, "rhd", frame)
    _as_schema_1(rpath, spath, keep=(PA_FORMAT_KEY,))
    assert set(results.read_results(rpath).protocol) == {"2.5d-gtroot-gtbone", "rr-gtscale"}
    assert set(results.read_summary(spath).protocol) == {"2.5d-gtroot-gtbone", "rr-gtscale"}
    table = pq.read_table(rpath)
    pq.write_table(table.replace_schema_metadata({PARQUET_SCHEMA_KEY: str(RESULTS_SCHEMA + 1).encode()}), rpath)
    with pytest.raises(HcdgError, match="newer hcdg"):
        results.read_results(rpath)
