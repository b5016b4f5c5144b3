"""`hcdg eval`: a trained run's Branch1 on a target split, under every evaluation protocol.

    run.json + model.safetensors (or a checkpoint)  --> HandPoseNet (Branch1 only, paper §3.5)
    reader (stb | rhd | freihand) --transforms.prepare--> crop (left hands mirrored to right,
        box from the GT keypoints or the authors' released boxes)
    model.predict --> heatmaps, xyz_rel_norm
    protocols.run_protocols (in the mirrored frame prepare works in)
        --> un-mirror (x -> -x) --> results in the dataset's own camera frame
    store.results.write_results --> RUN_DIR/eval/<target>.parquet + <target>-summary.parquet

Every protocol that applies to the network's output is computed for every sample
(`2.5d-gtroot-gtbone`, `rr-gtscale`, `pa`, `pa-proper` for xyz networks; `authors` for uvd
networks, e.g. an imported authors' checkpoint; docs/sources.md#evaluation-protocols, `protocols.protocols_for_output`);
STB (palm-rooted ground truth) gets both roots, `wrist` and `palm`; wrist-rooted data (RHD,
FreiHAND) also gets hand3d's palm root under `rr-gtscale`
(`protocols.roots_for`). Re-running replaces only that target's two files (and its
`eval/<target>.json` record).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hcdg.pipeline.config import ConfigError, to_dict
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.protocols import DECODERS, PROTOCOLS
from hcdg.store import eval_files as ef
from hcdg.store.run_model import LoadedModel, load_run_model
from hcdg.store.schema import current_protocol_name

Target = Literal["stb", "rhd", "freihand"]
TARGETS = ("stb", "rhd", "freihand")
CROPS = ("gt", "seed-boxes")
#: Split evaluated when --split is not given: each dataset's test split (paper §4.1).
DEFAULT_SPLITS = {"stb": "test", "rhd": "evaluation", "freihand": "evaluation"}

#: RHD evaluation images the paper authors' test code skips (its `Rhp` dataset class has a
#: file list; of it only these three lie in the 2,728-image evaluation split), which is why
#: their released `Rhp_bbox.npy` has 2,725 rows (docs/sources.md#rhd).
RHD_AUTHORS_DROPPED = ("00162", "00359", "01488")


@dataclass(frozen=True)
class EvalConfig:
    """What `hcdg eval` evaluates, and how.

    Attributes:
        run: the training run folder (holds run.json and model.safetensors / checkpoints/).
        target: dataset to evaluate on (paper §4: STB and RHD; FreiHAND for in-domain checks).
        root: the target dataset's root folder (layout: docs/sources.md#datasets).
        split: None = the test split: stb "test" (B1Counting + B1Random), rhd "evaluation",
            freihand "evaluation" (not the reader's default "training": that is the source data).
        checkpoint: None = the finished model (model.safetensors), else the newest
            checkpoint; "final"; "latest"; a step number ("500"); a checkpoint folder name
            ("step-00000500") or path (RUN/checkpoints/step-...).
        batch_size: images per forward pass (does not change results).
        device: "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
        protocols: which protocols to compute; None = all that apply to the network's output
            (docs/sources.md#evaluation-protocols). One that does not apply is refused.
        crops: "gt" = hand3d's box from the ground-truth keypoints (with the run's crop_scale);
            "seed-boxes" = the authors' released [x, y, w, h] boxes from `boxes`, cut as their
            test code cuts them (truncated to int, box centre -> crop centre S/2;
            `authors.crop_from_xywh`; docs/sources.md#authors-test-code). The authors' computation on "gt" boxes is
            named ``authors-gtcrops``; ``authors`` always means their boxes.
        boxes: the .npy file of boxes for crops="seed-boxes" (STB (3000, 4), RHD (2725, 4)).
        decoder: heatmap -> 2D decoder for 2.5d-gtroot-gtbone (`protocols.decode_heatmaps`).
        scale: test-time box size multiplier about the box centre (> 1 zooms out). 1.0 = their
            main/test.py:18 default and main/test.sh (``--scale 1``), the paper's setting.
        rot: test-time rotation of the crop, degrees (their gen_trans_from_patch_cv angle,
            main/preprocessing.py:183). 0.0 = main/test.py:19 and main/test.sh (``--rot 0``).
            hcdg's protocols roll the camera instead and un-roll the prediction (`eval_crops`).
        limit: evaluate only the first N samples (quick checks); None = all.
        workers: DataLoader worker processes for decoding + cropping (0 = in process).
        progress: show a progress bar.
        force: replace results of the same file name written by a different evaluation
            (another protocol subset or box file; `store.eval_files.check_overwrite`).
        write_submission: also write the FreiHAND toolbox's pred.json (`store.submission`) of
            FreiHAND's evaluation split, every sample, from `submission_protocol`'s prediction.
    """

    run: str = ""
    target: Target = "stb"
    root: str = ""
    split: str | None = None
    checkpoint: str | None = None
    batch_size: int = 32
    device: str = "auto"
    protocols: tuple[str, ...] | None = None
    crops: Literal["gt", "seed-boxes"] = "gt"
    boxes: str | None = None
    decoder: str = "soft-argmax"
    scale: float = 1.0  # their main/test.py:18, test.sh --scale 1
    rot: float = 0.0  # their main/test.py:19, test.sh --rot 0
    limit: int | None = None
    workers: int = 0
    progress: bool = True
    force: bool = False
    write_submission: str | None = None
    # the protocol whose camera-frame prediction goes into the submission: the 2.5D reading
    # (2D from the heatmaps, GT root depth and bone length; docs/results.md); "authors" for uvd nets
    submission_protocol: str = "2.5d-gtroot-gtbone"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--target: expected one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.crops not in CROPS:
            raise ConfigError(f"--crops: expected one of {', '.join(CROPS)}, got {self.crops!r}")
        if self.crops == "seed-boxes" and not self.boxes:
            raise ConfigError("--crops seed-boxes: needs the box file (--boxes FILE.npy)")
        if self.crops == "gt" and self.boxes:
            raise ConfigError("--boxes: only used with --crops seed-boxes")
        if self.protocols is not None:
            object.__setattr__(self, "protocols", tuple(current_protocol_name(p) for p in self.protocols))
        unknown = [p for p in self.protocols or () if p not in PROTOCOLS]
        if unknown or self.protocols == ():
            raise ConfigError(f"--protocol: expected some of {', '.join(PROTOCOLS)}, got {list(self.protocols)!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"--decoder: expected one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size: expected >= 1, got {self.batch_size!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit: expected >= 1, got {self.limit!r}")
        if self.workers < 0:
            raise ConfigError(f"--workers: expected >= 0, got {self.workers!r}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"--scale: expected a finite number > 0, got {self.scale!r}")
        if not np.isfinite(self.rot):
            raise ConfigError(f"--rot: expected a finite number of degrees, got {self.rot!r}")
        from hcdg.pipeline.protocols import check_crops

        try:
            check_crops(self.protocols or (), self.crops)
        except HcdgError as exc:
            raise ConfigError(str(exc)) from None
        if self.write_submission and (self.target != "freihand" or self.split not in (None, "evaluation")
                                      or self.limit is not None):
            raise ConfigError("--write-submission: only with --target freihand on the evaluation split, "
                              "every sample (no --limit)")


#: The decoder a results file is named without (EvalConfig.decoder's default).
_DEFAULT_DECODER = EvalConfig.decoder


# --------------------------------------------------------------------------- the data


def _load_boxes(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise HcdgError(f"--boxes {path}: no such file (expected a .npy of [x, y, w, h] rows)")
    try:
        boxes = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise HcdgError(f"--boxes {path}: not a numeric .npy array ({str(exc).splitlines()[0]})") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.issubdtype(boxes.dtype, np.number):
        raise HcdgError(f"--boxes {path}: expected an (N, 4) array of [x, y, w, h], got {boxes.shape} {boxes.dtype}")
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= 0):
        raise HcdgError(f"--boxes {path}: boxes must be finite with width and height > 0")
    return boxes.astype(np.float64)


def select_samples(reader: Any, cfg: EvalConfig) -> tuple[list[int], np.ndarray | None, str]:
    """(reader indices to evaluate, their (n, 4) boxes or None, a note on what was dropped).

    Seed boxes are matched to samples by position in reader order. RHD's evaluation split
    has 2,728 images and the authors' file 2,725 rows: their test code skips three images
    (`RHD_AUTHORS_DROPPED`). Under the authors' protocols those three are always skipped
    (a box file with a row for every image loses their rows too); under hcdg's protocols
    only when the box file has the authors' count. Any other count mismatch is an error.
    """
    from hcdg.pipeline.protocols import uses_authors

    n = len(reader)
    indices = list(range(n))
    boxes = None
    note = ""
    drop: set[int] = set()
    if reader.dataset == "rhd":
        ids = [reader.sample_id(i) for i in indices]
        drop = {ids.index(s) for s in RHD_AUTHORS_DROPPED if s in ids}
    theirs = uses_authors(cfg.protocols or ())
    if cfg.crops == "seed-boxes":
        boxes = _load_boxes(cfg.boxes or "")
        if theirs and drop and len(boxes) == n:  # a row per image: the dropped images' rows go too
            boxes = np.delete(boxes, sorted(drop), axis=0)
        elif not theirs and not (len(drop) == len(RHD_AUTHORS_DROPPED) and len(boxes) == n - len(drop)):
            drop = set()
    elif not theirs:
        drop = set()
    if drop:
        indices = [i for i in indices if i not in drop]
        note = (f"skipped RHD {', '.join(reader.sample_id(i) for i in sorted(drop))} "
                "(the authors' test code drops them)")
    if boxes is not None:
        if len(boxes) != len(indices):
            raise HcdgError(
                f"--boxes {cfg.boxes}: {len(boxes)} boxes for {n} samples of {reader.dataset}/{reader.split}; "
                "expected one [x, y, w, h] row per sample in reader order "
                "(the authors' files: STB test (3000, 4), RHD evaluation (2725, 4))"
            )
    if cfg.limit is not None:
        indices = indices[: cfg.limit]
        boxes = None if boxes is None else boxes[: cfg.limit]
    return indices, boxes, note


class _Prepared:
    """torch Dataset: reader index -> `transforms.prepare` output (no augmentation)."""

    def __init__(self, reader: Any, indices: list[int], boxes: np.ndarray | None, crop: Any,
                 backend: str = "pil", scale: float = EvalConfig.scale, rot: float = EvalConfig.rot) -> None:
        self.reader, self.indices, self.boxes, self.crop = reader, indices, boxes, crop
        self.backend, self.scale, self.rot = backend, scale, rot

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from hcdg.pipeline.eval_crops import eval_crop

        sample = self.reader[self.indices[i]]
        out = eval_crop(sample, self.crop, backend=self.backend, scale=self.scale, rot_deg=self.rot,
                        box_xywh=None if self.boxes is None else self.boxes[i])
        keep = ("image", "hand_side", "xyz_m", "K", "crop_from_image", "image_from_crop", "image_from_original",
                "rot_aug", "visible", "mirrored")
        item = {k: out[k] for k in keep}
        item["K_image"] = np.asarray(sample.K, dtype=np.float64)  # not mirrored (authors protocol)
        item["sample_id"] = sample.sample_id
        item["gt_root"] = sample.root
        item["uv_gt_px"] = np.asarray(sample.uv, dtype=np.float64)  # original image pixels (mmpose 2D metrics)
        return item


# --------------------------------------------------------------------------- the run


def _unmirror(xyz: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """(N, 21, 3) points of mirrored samples mapped back to their own camera frame (x -> -x)."""
    out = np.array(xyz, dtype=np.float64)
    out[mirrored, :, 0] *= -1.0
    return out


def predict_split(loaded: LoadedModel, dataset: _Prepared, cfg: EvalConfig, desc: str) -> dict[str, Any]:
    """Run Branch1 over the prepared samples; gather what the protocols need (mirrored frame)."""
    import torch
    from torch.utils.data import DataLoader

    from hcdg.pipeline import protocols
    from hcdg.stages import progress

    dev = next(loaded.model.parameters()).device
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers)
    from hcdg.pipeline.authors import heatmap_argmax_upsampled

    keys = ("xyz_m", "K", "K_image", "crop_from_image", "image_from_crop", "image_from_original", "rot_aug", "visible",
            "mirrored", "uv_gt_px")
    acc: dict[str, list] = {k: [] for k in (*keys, "xyz_rel_norm", "uv_hm", "uv_argmax_crop", "sample_id", "gt_root")}
    need_argmax = protocols.uses_authors(cfg.protocols or ())
    size = loaded.crop.input_size
    with torch.inference_mode():
        bar = progress.bar(len(loader), desc, "batch", enabled=cfg.progress, rate_unit="images",
                           rate_scale=cfg.batch_size, dynamic_ncols=True)  # status lines off a terminal
        for batch in loader:
            out = loaded.model.predict(batch["image"].to(dev), batch["hand_side"].to(dev))
            heat = out["heatmaps"][-1].float().cpu().numpy()
            acc["uv_hm"].append(protocols.decode_heatmaps(heat, cfg.decoder))
            if need_argmax:
                acc["uv_argmax_crop"].append(heatmap_argmax_upsampled(out["heatmaps"][-1], size))
            acc["xyz_rel_norm"].append(out["xyz_rel_norm"].float().cpu().numpy().astype(np.float64))
            for k in keys:
                acc[k].append(np.asarray(batch[k]))
            acc["sample_id"].extend(batch["sample_id"])
            acc["gt_root"].extend(batch["gt_root"])
            bar.update(1)
    bar.close()
    if not acc["sample_id"]:
        raise HcdgError(f"{desc}: no samples to evaluate")
    res = {k: np.concatenate(v) for k, v in acc.items() if k not in ("sample_id", "gt_root") and v}
    res["sample_id"], res["gt_root"] = acc["sample_id"], acc["gt_root"]
    res["mirrored"] = res["mirrored"].astype(bool)
    return res


def evaluate_predictions(pred: dict[str, Any], crop: Any, protocols_: tuple[str, ...],
                         target: str = "stb") -> tuple[list[Any], np.ndarray]:
    """Every protocol on gathered predictions; results un-mirrored into each dataset's own frame.

    `target` picks the authors protocol's variant: their STB script for "stb", their RHD
    script otherwise (FreiHAND was not in their test code; the RHD variant is used).

    Returns (ProtocolResults with pred/gt in the original camera frame, (N, 21, 2) predicted
    2D joints in original image pixels from the heatmaps).
    """
    from hcdg.pipeline import protocols

    roots = sorted(set(pred["gt_root"]))
    if len(roots) != 1:
        raise HcdgError(f"evaluation: samples mix ground-truth roots {roots}; evaluate one dataset at a time")
    if "rot_aug" in pred and not protocols.uses_authors(protocols_):  # test-time --rot: back to the camera
        from hcdg.pipeline.eval_crops import unroll

        pred = {**pred, "xyz_m": unroll(pred["xyz_m"], pred["rot_aug"]),
                "xyz_rel_norm": unroll(pred["xyz_rel_norm"], pred["rot_aug"])}
    img_from_hm = protocols.image_from_heatmap(pred["crop_from_image"], crop.input_size, crop.heatmap_size)
    authors_in = None
    if protocols.uses_authors(protocols_):
        authors_in = protocols.AuthorsInputs(
            variant="stb" if target == "stb" else "rhd", uv_argmax_crop=pred.get("uv_argmax_crop"),
            crop_from_image=pred["crop_from_image"], K_image=pred["K_image"], input_size=crop.input_size,
            image_from_crop=pred.get("image_from_crop"),
        )  # fmt: skip
    results = protocols.run_protocols(
        pred["xyz_rel_norm"], pred["xyz_m"], gt_root=roots[0], K=pred["K"], uv_hm=pred["uv_hm"],
        image_from_heatmap=img_from_hm, protocols=protocols_, authors_inputs=authors_in,
    )  # fmt: skip
    m = pred["mirrored"]
    palm_vis = protocols.palm_visible(pred["visible"]) if roots[0] == "wrist" else None
    results = [
        dataclasses.replace(
            r, pred_xyz_m=_unmirror(r.pred_xyz_m, m), gt_xyz_m=_unmirror(r.gt_xyz_m, m),
            visible=palm_vis if (r.root == "palm" and palm_vis is not None) else r.visible,
        )
        for r in results
    ]  # fmt: skip
    uv_img = protocols.heatmap_to_image(pred["uv_hm"], img_from_hm)  # mirrored image pixels
    uv_orig = protocols.heatmap_to_image(uv_img, pred["image_from_original"])  # the flip is its own inverse
    return results, uv_orig


def format_summary(summary: Any) -> str:
    """The summary table as text: one line per protocol x root (all joints)."""
    s = summary[summary["joints"] == "all"]
    from hcdg.store.results import AXIS_COLUMNS

    cols = ["target", "protocol", "root", "n_samples", "epe_mean_mm", "epe_median_mm",
            *[c for c in AXIS_COLUMNS if c in s.columns], "auc_0_50_20", "auc_20_50_hand3d"]
    return s[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}" if abs(v) >= 1.5 else f"{v:.3f}")


def eval_identity(cfg: EvalConfig, loaded: LoadedModel, split: str) -> Any:
    """The `store.eval_files.EvalIdentity` of this evaluation (names its files)."""
    from hcdg.store.checkpoints import MODEL_WEIGHTS

    final = Path(loaded.source).name == MODEL_WEIGHTS
    return ef.EvalIdentity(
        checkpoint=ef.checkpoint_name(loaded.step, final), target=cfg.target, split=split,
        default_split=split == DEFAULT_SPLITS[cfg.target], crops=cfg.crops,
        boxes=Path(cfg.boxes).name if cfg.boxes else None, limit=cfg.limit,
        protocols=tuple(sorted(cfg.protocols or ())), decoder=cfg.decoder,
        default_decoder=_DEFAULT_DECODER, scale=float(cfg.scale), rot=float(cfg.rot),
    )  # fmt: skip


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate `cfg.run` on `cfg.target`; write the results; return paths and the summary.

    Returns {"results": Path, "summary": Path, "record": Path, "summary_frame": DataFrame,
    "n_samples": int, "random_weights": bool}.
    """
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.store import results as rs
    from hcdg.store.atomic import atomic_write_json

    if not cfg.run:
        raise HcdgError("--run: the training run folder is required")
    if not cfg.root:
        raise HcdgError("--root: the target dataset's root folder is required")
    t0 = time.perf_counter()
    from hcdg.pipeline import protocols as prot

    loaded = load_run_model(cfg.run, cfg.checkpoint, cfg.device)
    output = loaded.model.cfg.output
    chosen = cfg.protocols or prot.default_protocols(output, cfg.crops)
    prot.check_applies(chosen, output, f"run {cfg.run}")
    cfg = dataclasses.replace(cfg, protocols=chosen)
    backend = "cv2" if prot.uses_authors(chosen) else "pil"  # the authors' crop for their computation
    from hcdg.pipeline.eval_crops import check_options

    check_options(backend, cfg.scale, cfg.rot)
    reader = open_dataset(cfg.target, Path(cfg.root), cfg.split or DEFAULT_SPLITS[cfg.target])
    if not getattr(reader, "has_3d", True):
        raise HcdgError(f"--root {cfg.root}: 2D keypoints only (no joint_cam + cam_param); eval needs 3D ground truth")
    indices, boxes, note = select_samples(reader, cfg)
    note = "; ".join(n for n in (getattr(reader, "note", ""), note) if n)  # e.g. a partial STB copy
    if not indices:
        raise HcdgError(f"--root {cfg.root}: {cfg.target}/{reader.split} holds no samples")
    identity = eval_identity(cfg, loaded, reader.split)
    ef.check_overwrite(cfg.run, identity, cfg.force)  # before any work or write
    if cfg.write_submission:
        from hcdg.store import submission

        submission.check_path(cfg.write_submission)
        sub_protocol = "authors" if output == "uvd" else cfg.submission_protocol
        if sub_protocol not in cfg.protocols:
            raise HcdgError(f"--write-submission: needs protocol {sub_protocol} among --protocol")
    dataset = _Prepared(reader, indices, boxes, loaded.crop, backend, cfg.scale, cfg.rot)
    pred = predict_split(loaded, dataset, cfg, desc=f"eval {Path(cfg.run).name} on {cfg.target}/{reader.split}")
    results, uv_px = evaluate_predictions(pred, loaded.crop, cfg.protocols, cfg.target)
    from hcdg.pipeline.metrics_2d import mmpose_2d

    m2d = mmpose_2d(uv_px, pred["uv_gt_px"], pred["visible"].astype(bool))  # heatmap 2D, original pixels

    run_cols = rs.run_columns(cfg.run)
    n = len(pred["sample_id"])
    extra = {
        "mirrored": pred["mirrored"].tolist(),
        "pred_uv_px": [u.reshape(-1).tolist() for u in uv_px],
        "crops": [cfg.crops] * n,
        "crop_backend": [backend] * n,
        "test_scale": [float(cfg.scale)] * n,
        "test_rot_deg": [float(cfg.rot)] * n,
        "decoder": [cfg.decoder] * n,
        **{k: [v] * n for k, v in identity.columns(loaded.step).items()},
    }
    from hcdg.store.runs import read_run

    frame = rs.results_frame(
        run=run_cols["run"], target=cfg.target, split=reader.split, sample_ids=pred["sample_id"],
        results=results, visible=pred["visible"], config=read_run(cfg.run)["config"],
        random_weights=run_cols["random_weights"], extra=extra,
    )  # fmt: skip
    res_path, sum_path = rs.write_results(cfg.run, identity.stem, frame, summary_columns=m2d)
    sub_path = None
    if cfg.write_submission:
        picked = next(r for r in results if r.protocol == sub_protocol and r.root == "wrist")
        sub_path = submission.write_freihand_submission(cfg.write_submission, picked.pred_xyz_m)
        if n != submission.FREIHAND_EVAL_SAMPLES:
            note = "; ".join(x for x in (note, f"submission has {n} entries; the FreiHAND toolbox expects "
                                               f"{submission.FREIHAND_EVAL_SAMPLES}") if x)
    summary = rs.read_summary(sum_path)
    record_path = ef.record_path(cfg.run, identity.stem)
    atomic_write_json(record_path, {
        "identity": identity.to_json(), "reference": identity.is_reference,
        "eval_config": to_dict(cfg), "weights": loaded.source, "checkpoint_step": loaded.step,
        "crop": to_dict(loaded.crop), "crop_backend": backend, "split": reader.split, "n_samples": n, "note": note,
        "mmpose_2d": m2d,
        "random_weights": run_cols["random_weights"], "seconds": round(time.perf_counter() - t0, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })  # fmt: skip
    return {
        "results": res_path, "summary": sum_path, "record": record_path, "summary_frame": summary,
        "weights": loaded.source, "checkpoint_step": loaded.step,
        "n_samples": n, "random_weights": run_cols["random_weights"], "note": note, "identity": identity,
        "mmpose_2d": m2d, "submission": sub_path,
    }  # fmt: skip
