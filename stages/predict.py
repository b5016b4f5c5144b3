"""`hcdg predict`: a trained or imported run on a user's own photos -> overlays + a table.

    IMAGE_OR_FOLDER... (JPEG/PNG, any size) [+ --boxes FILE.json|.npy] [+ --side]
        --validate first: run folder, boxes, K, output folder--
        --decode (EXIF orientation applied; bad files skipped, one line each)--
        --pipeline.predict.plan_crop / cut_crop--> crops (left hands mirrored in)
        --HandPoseNet.predict (Branch1 only)--> pipeline.predict.decode_batch
        --> OUT_DIR/predictions.parquet, predictions.json, overlays/<name>.png [, <name>.3d.png]

OUT_DIR is assembled beside itself and renamed into place at the end, so a failed or
interrupted run leaves nothing half-written. `hcdg.predict(...)` (this module's
`predict_frame`) returns the same table as a DataFrame without writing anything.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.predict import SIDES, WHOLE_IMAGE, check_box, check_K

#: File name endings read from folders (a file named on the command line is tried whatever its ending).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RESULT_FILES = ("predictions.parquet", "predictions.json")
OVERLAY_DIR = "overlays"


@dataclass(frozen=True)
class PredictConfig:
    """What `hcdg predict` reads and writes.

    Attributes:
        run: a run folder (`hcdg train` or `hcdg import authors`).
        inputs: image files and/or folders of them (non-recursive; .jpg/.jpeg/.png).
        out: the output folder to create (must be new or empty; see `overwrite`).
        boxes: a .json {file name: [x, y, w, h] or {"box": [...], "side": ..., "K": ...}} or an
            (N, 4) .npy in input order, or the authors' STB_bbox.npy / Rhp_bbox.npy (rows matched
            to inputs by file name, `stages.predict_boxes`); None = the whole image is the crop.
        box_frame: the pixel frame of the boxes: "image" (as the image is) or "mirrored" (the
            image flipped left-right, u -> W - 1 - u); None = the frame the file was made in
            (the authors' STB boxes: mirrored; their RHD boxes: mirrored for left hands), else image.
        side: "auto" = the boxes file's per-image side, else right (there is no hand-side
            detector: hand3d's HandSegNet is not part of the paper's network); "left" /
            "right" = every image (overrides the boxes file).
        whole_image: crop when an image has no box: "pad" (whole image padded to a square,
            nothing cut off) or "center" (its central square).
        bone_length_mm: middle MCP -> PIP length; gives root-relative millimetres (and with
            `K` the camera frame). None = normalised units only.
        K: intrinsics of the images, "fx,fy,cx,cy" or a .json/.npy 3x3 file (per image in the
            boxes JSON instead); with `bone_length_mm` gives camera-frame millimetres.
        checkpoint: as `hcdg eval --checkpoint` (None = the finished model).
        device: "auto", "cpu", "cuda", "cuda:N". batch_size: crops per forward pass.
        decoder: heatmap -> 2D decoder; soft-argmax = `hcdg eval`'s default.
        plot3d: also write a 3D view per image. overwrite: replace an earlier `hcdg predict`
            output folder. progress: progress bar.
    """

    run: str = ""
    inputs: tuple[str, ...] = ()
    out: str = ""
    boxes: str | None = None
    box_frame: Literal["image", "mirrored"] | None = None
    side: Literal["auto", "left", "right"] = "auto"
    whole_image: Literal["pad", "center"] = "pad"
    bone_length_mm: float | None = None
    K: str | None = None
    checkpoint: str | None = None
    device: str = "auto"
    # crops per forward: 16 x 256^2 crops of the paper's network stay well under 2 GiB on CPU
    batch_size: int = 16
    decoder: str = "soft-argmax"
    plot3d: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        from hcdg.pipeline.protocols import DECODERS

        if self.side not in ("auto", *SIDES):
            raise ConfigError(f"--side: expected auto, left or right, got {self.side!r}")
        if self.box_frame is not None and self.box_frame not in ("image", "mirrored"):
            raise ConfigError(f"--box-frame: expected image or mirrored, got {self.box_frame!r}")
        if self.whole_image not in WHOLE_IMAGE:
            raise ConfigError(f"--whole-image: expected one of {', '.join(WHOLE_IMAGE)}, got {self.whole_image!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size: expected >= 1, got {self.batch_size!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"--decoder: expected one of {', '.join(DECODERS)}, got {self.decoder!r}")
        b = self.bone_length_mm
        if b is not None and not (np.isfinite(b) and b > 0):
            raise ConfigError(f"--bone-length-mm: expected a finite length > 0, got {b!r}")


@dataclass
class ImageItem:
    """One input: `name` (unique), a `path` to decode or an `array` (H, W, 3) uint8; its box,
    side and intrinsics (None = not given)."""

    name: str
    path: Path | None = None
    array: np.ndarray | None = None
    box: np.ndarray | None = None
    side: str = "right"
    K: np.ndarray | None = None
    box_frame: str = "image"  # pipeline.predict.BOX_FRAMES: the pixel frame `box` is given in


# --------------------------------------------------------------------------- inputs


def list_images(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their image files (sorted by name); one-line errors."""
    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise HcdgError(f"{p}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise HcdgError(f"{p}: no such image file or folder")
    return files


def _read_matrix(spec: str, where: str) -> np.ndarray:
    p = Path(spec)
    if p.suffix.lower() in (".json", ".npy"):
        if not p.is_file():
            raise HcdgError(f"{where} {spec}: no such file")
        try:
            value = np.load(p, allow_pickle=False) if p.suffix.lower() == ".npy" else json.loads(p.read_text())
        except (ValueError, OSError) as exc:
            raise HcdgError(f"{where} {spec}: cannot read ({str(exc).splitlines()[0][:120]})") from None
        return check_K(value, f"{where} {spec}")
    try:
        values = [float(t) for t in spec.split(",")]
    except ValueError:
        raise HcdgError(f"{where} {spec}: expected fx,fy,cx,cy or a .json/.npy file holding a 3x3 matrix") from None
    return check_K(values, f"{where} {spec}")


def read_boxes(path: str, names: list[str], paths: list[Path | None] | None = None) -> dict[str, dict[str, Any]]:
    """{file name: {"box": (4,), "side": str | None, "K": (3, 3) | None}} for every name.

    .json: an object keyed by file name, each value [x, y, w, h] or {"box": [...], "side":
    "left"|"right", "K": 3x3 or [fx, fy, cx, cy]}; keys for files not given are ignored.
    .npy: an (N, 4) array, one row per input image in input order. A missing box is an error.
    """
    p = Path(path)
    if not p.is_file():
        raise HcdgError(f"--boxes {path}: no such file (expected .json keyed by file name or an (N, 4) .npy)")
    out: dict[str, dict[str, Any]] = {}
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise HcdgError(f"--boxes {path}: not a numeric .npy array ({str(exc).splitlines()[0][:120]})") from None
        from hcdg.stages import predict_boxes

        kind = predict_boxes.authors_kind(arr, len(names))
        if kind is not None:
            return predict_boxes.read_authors_boxes(arr, kind, f"--boxes {path}", names,
                                                    paths or [None] * len(names))
        if arr.ndim != 2 or arr.shape != (len(names), 4):
            raise HcdgError(f"--boxes {path}: expected ({len(names)}, 4) [x, y, w, h] rows, one per input image "
                            f"in input order, got {arr.shape}")
        for i, name in enumerate(names):
            out[name] = {"box": check_box(arr[i], f"--boxes {path} row {i}"), "side": None, "K": None}
        return out
    if p.suffix.lower() != ".json":
        raise HcdgError(f"--boxes {path}: expected a .json or .npy file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HcdgError(f"--boxes {path}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    except OSError as exc:
        raise HcdgError(f"--boxes {path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise HcdgError(f"--boxes {path}: expected a JSON object keyed by file name")
    if isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        return _coco_boxes(p, names)
    for name in names:
        if name not in data:
            raise HcdgError(f"--boxes {path}: no box for {name!r} (keys are the images' file names)")
        entry = data[name]
        where = f"--boxes {path} [{name!r}]"
        if isinstance(entry, dict):
            unknown = sorted(set(entry) - {"box", "side", "K"})
            if unknown or "box" not in entry:
                raise HcdgError(f"{where}: expected keys box (required), side, K; got {sorted(entry)}")
            side = entry.get("side")
            if side is not None and side not in SIDES:
                raise HcdgError(f"{where}: side must be left or right, got {side!r}")
            K = None if entry.get("K") is None else check_K(entry["K"], f"{where} K")
            out[name] = {"box": check_box(entry["box"], where), "side": side, "K": K}
        else:
            out[name] = {"box": check_box(entry, where), "side": None, "K": None}
    return out


def _coco_boxes(path: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Boxes of a COCO-style hand keypoint JSON (`datasets.coco`): its ``bbox`` per image file
    name, side from ``hand_type``, K from ``cam_param``; one hand per image."""
    from hcdg.pipeline.datasets.coco import CocoHandDataset

    ds = CocoHandDataset(path)
    per_name: dict[str, dict[str, Any]] = {}
    for i in range(len(ds)):
        s = ds.annotation(i)
        name = s.image_path.name
        if name in per_name:
            raise HcdgError(f"--boxes {path}: {name!r} has more than one hand annotation (predict takes one per image)")
        per_name[name] = {"box": check_box(ds.bbox(i), f"--boxes {path} [{name!r}]"), "side": s.side,
                          "K": s.K if np.isfinite(s.K).all() else None}
    missing = [n for n in names if n not in per_name]
    if missing:
        raise HcdgError(f"--boxes {path}: no annotation for {missing[0]!r} (matched by the images' file_name)")
    return {n: per_name[n] for n in names}


def build_items(images: list[Any], boxes: Any, side: str, K: np.ndarray | None,
                box_frame: str | None = None) -> list[ImageItem]:
    """ImageItems from paths / folders / (H, W, 3) uint8 arrays and a boxes spec (a file path,
    an (N, 4) array, a {name: box} mapping, or None)."""
    items: list[ImageItem] = []
    for i, x in enumerate(images):
        if isinstance(x, (str, Path)):
            items += [ImageItem(name=f.name, path=f) for f in list_images([x])]
        else:
            arr = np.asarray(x)
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                raise HcdgError(f"images[{i}]: expected an (H, W, 3) uint8 RGB array, got {arr.shape} {arr.dtype}")
            items.append(ImageItem(name=f"image-{i:04d}", array=arr))
    if not items:
        raise HcdgError("no input images: give image files or folders of them")
    names = [it.name for it in items]
    seen: dict[str, ImageItem] = {}
    for it in items:
        if it.name in seen:
            raise HcdgError(f"{it.path or it.name}: two inputs are named {it.name!r} ({seen[it.name].path}); names "
                            "must be unique (boxes and outputs are keyed by file name)")
        seen[it.name] = it
    per: dict[str, dict[str, Any]] = {}
    if isinstance(boxes, (str, Path)):
        per = read_boxes(str(boxes), names, [it.path for it in items])
    elif isinstance(boxes, dict):
        missing = [n for n in names if n not in boxes]
        if missing:
            raise HcdgError(f"boxes: no box for {missing[0]!r} (keys are file names)")
        per = {n: {"box": check_box(boxes[n], f"boxes[{n!r}]"), "side": None, "K": None} for n in names}
    elif boxes is not None:
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.shape != (len(names), 4):
            raise HcdgError(f"boxes: expected ({len(names)}, 4) [x, y, w, h] rows, got {arr.shape}")
        per = {n: {"box": check_box(arr[i], f"boxes row {i}"), "side": None, "K": None} for i, n in enumerate(names)}
    for it in items:
        entry = per.get(it.name, {})
        it.box = entry.get("box")
        it.side = side if side in SIDES else (entry.get("side") or "right")
        it.K = entry.get("K") if entry.get("K") is not None else K
        frame = box_frame or entry.get("frame") or "image"
        it.box_frame = ("mirrored" if it.side == "left" else "image") if frame == "hand" else frame
    return items


def decode_image(item: ImageItem) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an item (EXIF orientation applied); OSError/ValueError when unreadable."""
    if item.array is not None:
        return item.array
    from PIL import Image, ImageOps

    with Image.open(item.path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        rgb = np.asarray(im.convert("RGB"))
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"decoded to an empty image {rgb.shape}")
    return rgb


def _decode_error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"not a readable JPEG/PNG image ({text[:120]})"


# --------------------------------------------------------------------------- the loop


def iter_predictions(loaded: Any, items: list[ImageItem], batch_size: int, decoder: str,
                     bone_mm: float | None, warn: Callable[[str], None], progress: bool = True,
                     whole_image: str = "pad", note: Callable[[str], None] | None = None,
                     ) -> Iterator[tuple[ImageItem, np.ndarray, dict[str, Any]]]:
    """(item, decoded image, table row) per readable image, in input order; unreadable ones
    are reported through `warn` (one line each) and skipped; a box that lies mostly outside
    its image gets a line through `note` (default stderr)."""
    import torch
    from PIL import Image

    from hcdg.pipeline import predict as pp
    from hcdg.stages import progress as prog

    net = loaded.model
    size = int(net.cfg.input_size)
    output = net.cfg.output
    dev = next(net.parameters()).device
    bar = prog.bar(len(items), "predict", "img", enabled=progress, dynamic_ncols=True)
    pending: list[tuple[ImageItem, np.ndarray, Any, np.ndarray]] = []

    def flush() -> Iterator[tuple[ImageItem, np.ndarray, dict[str, Any]]]:
        if not pending:
            return
        crops = torch.from_numpy(np.stack([c for *_, c in pending])).to(dev)
        side = torch.tensor([[0.0, 1.0]] * len(pending), device=dev)  # crops are right hands
        with torch.inference_mode():
            out = net.predict(crops, side)
        plans = [p for _, _, p, _ in pending]
        Ks = [it.K for it, *_ in pending]
        K = None if any(k is None for k in Ks) else np.stack(Ks)
        res = pp.decode_batch(out["heatmaps"][-1].float().cpu().numpy(), out["xyz_rel_norm"].float().cpu().numpy(),
                              plans, size, output, decoder, bone_mm=bone_mm, K=K)
        for j, (it, img, plan, _) in enumerate(pending):
            yield it, img, _row(it, plan, res, j, output, bone_mm)
        bar.update(len(pending))
        pending.clear()

    try:
        for it in items:
            try:
                img = decode_image(it)
            except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
                warn(f"skipped {it.path or it.name}: {_decode_error(exc)}")
                bar.update(1)
                continue
            box = None if it.box is None else pp.box_to_image(it.box, img.shape[1], it.box_frame)
            if box is not None:
                _check_box_in_image(it, box, img.shape[1], img.shape[0], note)
            plan = pp.plan_crop(img.shape[1], img.shape[0], size, it.side, box, whole_image)
            pending.append((it, img, plan, pp.cut_crop(img, plan, size)))
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()
    finally:
        bar.close()


#: Share of a box's crop outside its image above which predict warns (the hand is then
#: probably elsewhere: e.g. a box given in the other frame, --box-frame).
BOX_OUTSIDE_WARN = 0.5


def _check_box_in_image(it: ImageItem, box: np.ndarray, width: int, height: int,
                        note: Callable[[str], None] | None) -> None:
    from hcdg.pipeline.predict import outside_fraction

    out = outside_fraction(box, width, height)
    if out <= BOX_OUTSIDE_WARN:
        return
    where = "contains none of the image" if out >= 1.0 else f"lies mostly outside the image ({100 * out:.0f}% of it)"
    line = (f"warning: {it.path or it.name}: box {np.round(box, 1).tolist()} ({it.box_frame} frame) {where}; "
            "is --box-frame right?")
    (note or (lambda s: print(s, file=sys.stderr)))(line)


def _flat(a: np.ndarray | None, j: int) -> list[float] | None:
    if a is None or not np.all(np.isfinite(a[j])):
        return None
    return [float(v) for v in np.asarray(a[j]).reshape(-1)]


def _row(it: ImageItem, plan: Any, res: dict[str, Any], j: int, output: str, bone_mm: float | None) -> dict[str, Any]:
    return {
        "file": str(it.path) if it.path is not None else it.name, "name": it.name,
        "width": plan.width, "height": plan.height, "box": [float(v) for v in plan.box_xywh],
        "box_source": plan.box_source, "side": plan.side, "mirrored": bool(plan.mirrored), "output": output,
        **{k: _flat(res[k], j) for k in ("uv_px", "confidence", "xyz_rel_norm", "uvd", "xyz_rel_mm", "xyz_cam_mm")},
        "bone_length_mm": None if bone_mm is None else float(bone_mm),
        "K": None if it.K is None else np.asarray(it.K, dtype=float).reshape(-1).tolist(),
    }


def to_frame(rows: list[dict[str, Any]]) -> Any:
    """The predictions table (one row per image; joint columns flattened joint-major)."""
    import pandas as pd

    cols = ["file", "name", "width", "height", "box", "box_source", "side", "mirrored", "output", "uv_px",
            "confidence", "xyz_rel_norm", "uvd", "xyz_rel_mm", "xyz_cam_mm", "bone_length_mm", "K"]
    return pd.DataFrame(rows, columns=cols)


def predict_frame(run_dir: str | Path, images: Any, boxes: Any = None, *, side: str = "auto", whole_image: str = "pad",
                  bone_length_mm: float | None = None, K: Any = None, device: str = "cpu",
                  checkpoint: str | None = None, batch_size: int = 16, progress: bool = False,
                  box_frame: str | None = None) -> Any:
    """`hcdg.predict`: the predictions table as a DataFrame (nothing written). See docs/predict.md."""
    from hcdg.store.run_model import load_run_model

    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    cfg = PredictConfig(run=str(run_dir), side=side, whole_image=whole_image, bone_length_mm=bone_length_mm,
                        device=device, batch_size=batch_size, progress=progress,
                        box_frame=box_frame)  # validates the options
    Km = None if K is None else (_read_matrix(K, "K") if isinstance(K, str) else check_K(K, "K"))
    items = build_items(list(images), boxes, cfg.side, Km, cfg.box_frame)
    loaded = load_run_model(run_dir, checkpoint, device)
    skipped: list[str] = []
    rows = [row for _, _, row in iter_predictions(loaded, items, batch_size, cfg.decoder, bone_length_mm,
                                                  skipped.append, progress, cfg.whole_image)]
    for line in skipped:
        print(line, file=sys.stderr)
    frame = to_frame(rows)
    frame.attrs["skipped"] = skipped
    return frame


# --------------------------------------------------------------------------- the stage


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise HcdgError(f"--out {out}: exists and is not a folder")
    if any(out.iterdir()):
        if not overwrite:
            raise HcdgError(f"--out {out}: exists and is not empty; give a new folder (or --overwrite an earlier "
                            "`hcdg predict` output)")
        if not (out / "predictions.json").is_file():
            raise HcdgError(f"--out {out}: --overwrite replaces only an earlier `hcdg predict` output "
                            "(no predictions.json there)")


def _label(row: dict[str, Any]) -> str:
    how = "box given" if row["box_source"] == "given" else f"no box: {row['box_source'].replace('-', ' ')}"
    return f"{row['side']} hand{' (mirrored in)' if row['mirrored'] else ''}; {how}"


def overlay_stems(names: list[str]) -> dict[str, str]:
    """Image name -> overlay file stem: the name without its image suffix ("00111.png" -> "00111"),
    unless two inputs would then share a stem ("a.jpg", "a.png"): those keep their full name."""
    stems = [Path(n).stem if Path(n).suffix.lower() in IMAGE_SUFFIXES else n for n in names]
    clash = {s for s in stems if stems.count(s) > 1}
    return {n: (n if s in clash else s) for n, s in zip(names, stems)}


def _write_views(tmp: Path, item: ImageItem, image: np.ndarray, row: dict[str, Any], plot3d: bool,
                 stem: str) -> None:
    from PIL import Image

    from hcdg.pipeline import predict_draw
    from hcdg.pipeline.joints import N_JOINTS

    uv = np.asarray(row["uv_px"], dtype=np.float64).reshape(N_JOINTS, 2)
    drawn = predict_draw.overlay(image, uv, np.asarray(row["box"]), _label(row))
    Image.fromarray(drawn).save(tmp / OVERLAY_DIR / f"{stem}.png", format="PNG")
    if plot3d:
        for key, unit in (("xyz_cam_mm", "mm"), ("xyz_rel_mm", "mm"), ("xyz_rel_norm", "bone"), ("uvd", "uvd")):
            if row[key] is not None:
                fig = predict_draw.plot3d(np.asarray(row[key]).reshape(N_JOINTS, 3), f"{item.name}: {key}", unit)
                fig.savefig(tmp / OVERLAY_DIR / f"{stem}.3d.png", format="png")
                break


def run(cfg: PredictConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Predict every input image; write OUT_DIR; return {"out", "n_images", "skipped", "frame", "notes"}."""
    import time

    from hcdg.pipeline.joints import JOINT_NAMES
    from hcdg.store.run_model import load_run_model
    from hcdg.store.runs import package_versions

    if not cfg.run:
        raise HcdgError("--run: the run folder is required")
    if not cfg.out:
        raise HcdgError("--out: the output folder is required")
    out = Path(cfg.out)
    _check_out(out, cfg.overwrite)
    K = None if cfg.K is None else _read_matrix(cfg.K, "--K")
    items = build_items(list(cfg.inputs), cfg.boxes, cfg.side, K, cfg.box_frame)
    loaded = load_run_model(cfg.run, cfg.checkpoint, cfg.device)
    output = loaded.model.cfg.output
    notes = []
    if cfg.boxes is None:
        notes.append(f"no --boxes: the whole image is the crop ({'padded to a square' if cfg.whole_image == 'pad' else 'its central square'})")
    if cfg.side == "auto" and not any(it.side == "left" for it in items):
        notes.append("every image read as a right hand (--side auto without per-image sides)")
    if cfg.bone_length_mm is not None and output == "uvd" and any(it.K is None for it in items):
        notes.append("uvd network: millimetres need intrinsics (--K) as well as --bone-length-mm")
    for n in notes:
        echo(f"note: {n}")

    tmp = out.parent / f".{out.name}.predict-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    skipped: list[str] = []
    t0 = time.perf_counter()
    try:
        (tmp / OVERLAY_DIR).mkdir(parents=True)
        rows = []
        stems = overlay_stems([it.name for it in items])
        for item, image, row in iter_predictions(loaded, items, cfg.batch_size, cfg.decoder, cfg.bone_length_mm,
                                                 lambda s: (skipped.append(s), echo(s)), cfg.progress,
                                                 cfg.whole_image, note=echo):
            _write_views(tmp, item, image, row, cfg.plot3d, stems[item.name])
            rows.append(row)
        if not rows:
            raise HcdgError(f"no image could be read ({len(skipped)} skipped); nothing written")
        frame = to_frame(rows)
        frame.to_parquet(tmp / "predictions.parquet", index=False)
        meta = {
            "format": "hcdg-predictions/1", "run": str(cfg.run), "weights": loaded.source,
            "checkpoint_step": loaded.step, "output": output, "input_size": int(loaded.model.cfg.input_size),
            "joint_names": list(JOINT_NAMES), "units": UNITS, "notes": notes, "skipped": skipped,
            "decoder": cfg.decoder, "seconds": round(time.perf_counter() - t0, 2), "versions": package_versions(),
            "predictions": [_nested(r) for r in rows],
        }  # fmt: skip
        (tmp / "predictions.json").write_text(json.dumps(meta, indent=1) + "\n")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": out, "n_images": len(rows), "skipped": skipped, "frame": frame, "notes": notes}


#: What each column holds (predictions.json "units"; docs/predict.md).
UNITS = {
    "box": "[x, y, w, h] original image px (pixel centres at integers); the square that was cut",
    "uv_px": "21 x (u, v) original image px, from the final heatmaps",
    "confidence": "21 maxima of the final-stage heatmaps (targets peak at 1)",
    "xyz_rel_norm": "21 x 3 root-relative / middle MCP->PIP bone, camera orientation of the image (xyz networks)",
    "uvd": "21 x 3 the authors' (u/S, v/S, ((z - z_root)/0.15 m + 1)/2) in the crop, mirrored for left hands "
           "(uvd networks)",
    "xyz_rel_mm": "21 x 3 root-relative millimetres (needs --bone-length-mm; uvd networks also --K)",
    "xyz_cam_mm": "21 x 3 camera frame millimetres (needs --bone-length-mm and --K)",
    "K": "3 x 3 intrinsics used (row-major), original image px",
}


def _nested(row: dict[str, Any]) -> dict[str, Any]:
    from hcdg.pipeline.predict import JOINT_COLUMNS

    out = dict(row)
    for k, w in JOINT_COLUMNS.items():
        if out[k] is not None and w > 1:
            out[k] = np.asarray(out[k]).reshape(-1, w).tolist()
    if out["K"] is not None:
        out["K"] = np.asarray(out["K"]).reshape(3, 3).tolist()
    return out


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished folder into place (an empty or, with --overwrite, old output replaced)."""
    old = None
    if out.exists():
        if any(out.iterdir()):
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        else:
            out.rmdir()
    try:
        os.replace(tmp, out)
    except OSError as exc:
        if old is not None:
            os.replace(old, out)
        raise HcdgError(f"--out {out}: cannot write the output folder ({exc.strerror or exc})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
