"""`hcdg prompts`, `hcdg store info` and `hcdg store verify`: looking into a feature store.

`verify` rebuilds the encoder the store's fingerprint names (random weights from
the recorded seed, a tag's file or the recorded weights file, checked against the
recorded SHA-256), re-encodes K random prompt rows and K random image rows of each
split (reopening the dataset at the recorded root, whose manifest must still
match) and compares them with the stored rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.prompts import select_prompts
from hcdg.store import fingerprint as fpr

#: Relative error allowed per row, ||stored - fresh|| / ||fresh||: float16 storage rounds
#: each value to ~5e-4 relative; 2e-3 leaves room for kernel differences in float32 compute.
TOL_SAME_PRECISION = 2e-3
#: When the store was computed in fp16/bf16 (e.g. on a GPU) and verify runs in fp32.
TOL_OTHER_PRECISION = 3e-2


def prompt_lines(store: str | None = None, prompt_file: str | None = None,
                 prompt_filter: str | None = None) -> list[str]:
    """`id<TAB>text` lines: the store's prompt list, else Table 2 (or a file), optionally filtered."""
    if store is None:
        return select_prompts(prompt_file, prompt_filter).lines()
    if prompt_file:
        raise HcdgError("--prompt-file: not with --store (the store's own list is printed)")
    from hcdg.store import features as fs

    prompts, _ = fs.load_text(store, "cpu")
    ids = fs.load_text_ids(store)
    if prompt_filter:
        import re

        rx = re.compile(prompt_filter)
        return [f"{i}\t{t}" for i, t in zip(ids, prompts) if rx.search(t)]
    return [f"{i}\t{t}" for i, t in zip(ids, prompts)]


def info_text(info: dict[str, Any]) -> str:
    """The human-readable form of `store_info`."""
    fp = info["fingerprint"]
    enc = fp["encoder"]
    w = enc["weights"]
    weights = {"random": f"RANDOM weights (seed {w.get('seed')})", "tag": f"tag {w.get('tag')} ({w.get('file')})",
               "file": f"file {w.get('file')}", "local-dir": "local-dir"}.get(w["kind"], w["kind"])
    if "sha256" in w:
        weights += f" sha256 {w['sha256'][:12]}"
    if "synthetic_clip" in enc:  # `hcdg embed --clip`: trained by hcdg on rendered hands
        syn = enc["synthetic_clip"]
        weights = (f"synthetic CLIP ({syn['kind']}; {syn['not_openai']}) weights sha256 "
                   f"{syn['weights_sha256'][:12]}, corpus seeds {syn['corpus_seeds']}")
    pp = enc["preprocess"]
    lines = [
        f"store {info['path']} ({info['format']}, format v{info['version']}): "
        f"{'DAMAGED' if info.get('damaged') else 'complete' if info['complete'] else 'INCOMPLETE'}",
        f"encoder: {enc['model']} {weights}; quick_gelu={enc['quick_gelu']}; precision {enc['precision']}; "
        f"open_clip {enc['open_clip']}",
        f"preprocess: size {pp.get('size')} {pp.get('interpolation')} resize {pp.get('resize_mode')} "
        f"mean {pp.get('mean')} std {pp.get('std')}",
        f"features: D={info['dim']} stored as {info['dtype']} (raw encoder outputs, plus float32 row norms)",
    ]
    t = info["text"]
    if t["complete"]:
        lines.append(f"text: {t['count']} prompts ({t.get('n_distinct')} distinct) from {t.get('source')}, "
                     f"list digest {fp['prompts']['digest'][:12]}; {_integrity_word(t)}")
        lines += [f"  {p}" for p in t.get("integrity", {}).get("problems", [])[:10]]
    else:
        lines.append("text: not yet embedded")
    for s in info["splits"]:
        m = s["fingerprint"]["manifest"]
        lines.append(
            f"split {s['key']}: {s['complete_rows']}/{s['rows']} rows ({s['complete_chunks']}/{s['chunks']} chunks of "
            f"{s['chunk_rows']}){'' if s['complete_chunks'] == s['chunks'] else ' INCOMPLETE'}; {s['skipped']} skipped; "
            f"{m['n_files']} files, {m['total_bytes'] / 2**20:.1f} MiB, manifest {m['digest'][:12]}; "
            f"from {s['provenance'].get('root')}; {_integrity_word(s)}"
        )
        lines += [f"  {p}" for p in s.get("integrity", {}).get("problems", [])[:10]]
        if s["skipped_ids"]:
            lines.append(f"  skipped ids: {', '.join(s['skipped_ids'])}{' ...' if s['skipped'] > 20 else ''}")
    if info["splits"]:
        lines.append("note: a split's manifest records each file's relative path and size, so an image edited in "
                     "place at the same size is not noticed; `hcdg store verify` re-encodes sample rows")
    return "\n".join(lines)


def _integrity_word(table: dict[str, Any]) -> str:
    chk = table.get("integrity")
    if chk is None:
        return "integrity not checked"
    if chk["problems"]:
        return f"DAMAGED ({len(chk['problems'])} problems)"
    return "checksums OK" if chk["verified"] else "integrity UNVERIFIED (no checksums: written before hcdg had them)"


def info(path: str, as_json: bool = False) -> str:
    from hcdg.store import features as fs

    data = fs.store_info(path)
    return json.dumps(data, indent=2) if as_json else info_text(data)


@dataclass(frozen=True)
class VerifyConfig:
    store: str
    sample: int = 16  # rows re-encoded per table (text, each split)
    split: str | None = None  # only this split key (default: every split)
    root: str | None = None  # dataset root (default: the one recorded at embed time)
    pretrained: str | None = None  # weights file, when the recorded path moved
    device: str = "auto"
    seed: int = 0  # which rows are drawn
    workers: int = 0
    checksums_only: bool = False  # only the CRC32 check of every chunk (no encoder, no dataset needed)

    def __post_init__(self) -> None:
        from hcdg.pipeline.config import check_int_range, check_seed

        check_seed(self.seed)
        check_int_range(self.sample, "--sample", 1, 2**31 - 1)


def _rel_errors(stored: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    fresh = fresh.astype(np.float64)
    return np.linalg.norm(stored.astype(np.float64) - fresh, axis=1) / np.maximum(np.linalg.norm(fresh, axis=1), 1e-12)


def _encoder_for(meta: dict[str, Any], cfg: VerifyConfig, device: Any) -> Any:
    from hcdg.store.clip_weights import load_encoder

    enc = meta["fingerprint"]["encoder"]
    w = enc["weights"]
    recorded = meta.get("created", {}).get("weights_path")
    if w["kind"] == "random":
        model, pretrained = enc["model"], "none"
    elif w["kind"] == "local-dir":
        model, pretrained = f"local-dir:{cfg.pretrained or recorded}", None
    elif w["kind"] == "tag":
        model, pretrained = enc["model"], f"{w['tag']}={cfg.pretrained}" if cfg.pretrained else w["tag"]
    else:
        model, pretrained = enc["model"], cfg.pretrained or recorded
    precision = enc["precision"] if device.type == "cuda" or enc["precision"] == "fp32" else "fp32"
    encoder = load_encoder(model, pretrained, seed=int(w.get("seed", 0)), precision=precision, device=device)
    mine = encoder.identity()
    diffs = fpr.diff({k: v for k, v in enc.items() if k != "precision"},
                     {k: v for k, v in mine.items() if k != "precision"})
    if diffs:
        raise HcdgError(f"{cfg.store}: cannot verify, this encoder differs from the store's ({'; '.join(diffs[:3])})")
    return encoder


def verify(cfg: VerifyConfig) -> dict[str, Any]:
    """Re-encode `cfg.sample` random rows per table and compare (report["ok"] False on a mismatch)."""
    import torch

    from hcdg.store import features as fs
    from hcdg.pipeline.clip import ImageRows
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.devices import resolve_device

    info_ = fs.store_info(cfg.store)
    meta = fs.read_meta(cfg.store)
    if cfg.split and cfg.split not in {s["key"] for s in info_["splits"]}:
        raise HcdgError(f"--split {cfg.split}: not in {cfg.store} (splits: "
                        f"{', '.join(s['key'] for s in info_['splits']) or 'none'})")
    checked = ([{"table": "text", **info_["text"]["integrity"]}] if "integrity" in info_["text"] else []) + [
        {"table": s["key"], "chunks": s["chunks"], **s["integrity"]} for s in info_["splits"]
        if not cfg.split or s["key"] == cfg.split]
    by_key = {s["key"]: s for s in info_["splits"]}
    for c in checked:
        if c["table"] not in by_key or (c["table"] == "text" and "chunks" not in c):
            continue
        s = by_key[c["table"]]
        missing = int(s.get("chunks", 0)) - int(s.get("complete_chunks", s.get("chunks", 0)))
        if missing > 0:  # unflagged chunks are not checked: "every chunk matches" would not be true
            c["problems"] = [*c["problems"], f"split {s['key']}: {missing} of {s['chunks']} chunks have no done flag "
                             "(never written, or the flag was lost); rerun the `hcdg embed` command to complete it"]
    report: dict[str, Any] = {"store": cfg.store, "tolerance": None, "tables": [], "integrity": checked}
    if any(c["problems"] for c in checked) or cfg.checksums_only:
        report["ok"] = not any(c["problems"] for c in checked)
        return report  # damaged bytes are not worth re-encoding against
    device = resolve_device(cfg.device)
    encoder = _encoder_for(meta, cfg, device)
    same = encoder.precision == meta["fingerprint"]["encoder"]["precision"]
    tol = TOL_SAME_PRECISION if same else TOL_OTHER_PRECISION
    rng = np.random.default_rng(cfg.seed)
    report["tolerance"] = tol
    with fs.StoreReader(cfg.store) as reader:
        if reader.text_complete():
            prompts = reader.read(f"{fs.TEXT}/prompts")
            rows = np.sort(rng.choice(len(prompts), size=min(cfg.sample, len(prompts)), replace=False))
            fresh = encoder.encode_texts([str(prompts[r]) for r in rows]).numpy()
            stored = reader.read(f"{fs.TEXT}/feats", rows)
            report["tables"].append(_table_report("text", rows, stored, fresh, reader.read(f"{fs.TEXT}/norms", rows), tol))
        for s in info_["splits"]:
            key = s["key"]
            if cfg.split and key != cfg.split or not reader.has(fs.split_node(key)):
                continue
            node = fs.split_node(key)
            sfp = s["fingerprint"]
            root = Path(cfg.root or s["provenance"]["root"])
            options = {k: tuple(v) if isinstance(v, list) else v for k, v in sfp["options"].items()}
            ds = open_dataset(sfp["dataset"], root, sfp["split"], **options)
            here = fpr.manifest_fingerprint(ds.manifest())
            if here["digest"] != sfp["manifest"]["digest"]:
                raise HcdgError(f"{root}: the dataset files changed since {key} was embedded "
                                f"({sfp['manifest']['n_files']} files then, {here['n_files']} now); cannot verify")
            ids = reader.read(f"{node}/ids")
            k = int(sfp.get("views", {}).get("k", 1))  # a view split: rows i*K + v (docs/store.md "Views")
            if [ds.sample_id(i) for i in range(len(ids) // k)] != [str(i) for i in ids[::k]]:
                raise HcdgError(f"{cfg.store}: {key}: stored sample ids differ from the reader's at {root}")
            valid = reader.read(f"{node}/valid").astype(bool)
            done = np.repeat(reader.read(f"{node}/done").astype(bool), s["chunk_rows"])[: len(ids)]
            pool = np.flatnonzero(valid & done)
            rows = np.sort(rng.choice(pool, size=min(cfg.sample, pool.size), replace=False))
            if "views" in sfp:  # re-render each sampled view from its recorded augmentation
                from hcdg.pipeline.views import ViewRows, from_spec

                pp = encoder.model.visual.preprocess_cfg
                vr = ViewRows(ds, *from_spec(sfp["views"]["augmentation"]), int(sfp["views"]["seed"]), k,
                              encoder.image_size, pp["mean"], pp["std"])
                pixels = torch.stack([vr[int(r)][1] for r in rows]) if len(rows) else None
            else:
                data = ImageRows([ds.image_path(int(r)) for r in rows], encoder.preprocess, encoder.image_size)
                pixels = torch.stack([data[i][1] for i in range(len(data))]) if len(data) else None
            fresh = encoder.encode_images(pixels).cpu().numpy() if pixels is not None else np.empty((0, info_["dim"]))
            stored = np.stack([reader.read(f"{node}/feats", int(r)) for r in rows]) if len(rows) else fresh
            norms = np.array([reader.read(f"{node}/norms", int(r)) for r in rows], dtype=np.float32)
            report["tables"].append(_table_report(key, rows, stored, fresh, norms, tol))
    report["ok"] = all(t["ok"] for t in report["tables"])
    return report


def _table_report(name: str, rows: np.ndarray, stored: np.ndarray, fresh: np.ndarray, norms: np.ndarray,
                  tol: float) -> dict[str, Any]:
    err = _rel_errors(stored, fresh) if len(rows) else np.zeros(0)
    norm_err = (np.abs(norms - np.linalg.norm(fresh.astype(np.float64), axis=1)) /
                np.maximum(np.linalg.norm(fresh, axis=1), 1e-12)) if len(rows) else np.zeros(0)
    bad = [int(r) for r, e, n in zip(rows, err, norm_err) if not (e <= tol and n <= tol)]
    return {"table": name, "rows": len(rows), "max_rel_err": float(err.max(initial=0.0)),
            "max_norm_rel_err": float(norm_err.max(initial=0.0)), "bad_rows": bad[:20], "ok": not bad}


def verify_failure(report: dict[str, Any]) -> str:
    """The one-line error of a failed verify."""
    from hcdg.store.integrity import REPAIR

    if any(c["problems"] for c in report.get("integrity", [])):
        return f"{report['store']}: the store is damaged (see above); {REPAIR}"
    return f"{report['store']}: stored features differ from a fresh encoding (see above)"


def verify_text(report: dict[str, Any]) -> str:
    lines = []
    for c in report.get("integrity", []):
        if c["problems"]:
            lines += [f"integrity {c['table']}: DAMAGED: {p}" for p in c["problems"][:10]]
        elif c["verified"]:
            lines.append(f"integrity {c['table']}: every chunk matches its CRC32"
                         + (f" ({c['chunks']} chunks)" if "chunks" in c else ""))
        else:
            lines.append(f"integrity {c['table']}: UNVERIFIED: no checksums (written by an hcdg before checksums); "
                         "only readable, shape-consistent and finite where valid")
    lines += [f"{t['table']}: {t['rows']} rows re-encoded, max relative error {t['max_rel_err']:.2e} "
             f"(norms {t['max_norm_rel_err']:.2e}), tolerance {report['tolerance']:.0e}: "
             + ("OK" if t["ok"] else f"MISMATCH at rows {t['bad_rows']}") for t in report["tables"]]
    lines.append(f"verify {report['store']}: {'OK' if report['ok'] else 'FAILED'}")
    return "\n".join(lines)
