"""`hcdg export`: a run's test-time network as an ONNX or TorchScript file + a JSON sidecar.

    run folder --load_run_model (Branch1 only)--> pipeline.deploy.DeployNet
        (uint8 NHWC crop in; / 255, - input_offset inside the graph; xyz_rel_norm|uvd, heatmaps out)
        --torch.onnx.export (TorchScript-based exporter, opset 17) | torch.jit.trace-->
        FILE.tmp --checked against the eager model on random crops (onnxruntime / torch.jit.load)-->
        FILE + FILE.json (joint order, input size, output names, shapes, units, the check's numbers)

Both files are renamed into place only after the check passed. ONNX needs the optional
extra: ``pip install hcdg[export]`` (onnx, onnxruntime); without onnxruntime the ONNX file
is written and the sidecar says the check was skipped.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError

FORMATS = ("onnx", "torchscript")
#: ONNX opset: 17 is the newest the TorchScript-based exporter covers fully (torch >= 2.2) and
#: onnxruntime >= 1.14 runs it.
OPSET = 17
#: Largest |exported - eager| the export check accepts (the issue's round-trip tolerance).
CHECK_TOL = 1e-4


@dataclass(frozen=True)
class ExportConfig:
    """Attributes:
        run: the run folder. format: "onnx" or "torchscript". out: the file to write
            (its sidecar is `out` + ".json").
        input_size: crop side the graph takes; None = the network's (`ModelConfig.input_size`);
            another value puts a bilinear resize to the network's size in front.
        dynamic_batch: ONNX: a symbolic batch axis (else batch 1 only). TorchScript traces
            are batch-agnostic either way; the check runs batches 1 and 5 when set.
        checkpoint: as `hcdg eval --checkpoint`. check: compare with the eager model.
    """

    run: str = ""
    format: Literal["onnx", "torchscript"] = "onnx"
    out: str = ""
    input_size: int | None = None
    dynamic_batch: bool = False
    checkpoint: str | None = None
    check: bool = True

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.input_size is not None and self.input_size < 16:
            raise ConfigError(f"--input-size: expected >= 16, got {self.input_size!r}")


def _export_onnx(model: Any, example: Any, path: Path, names: tuple[str, str], dynamic: bool) -> None:
    import torch

    try:
        import onnx  # noqa: F401  (the exporter serialises with it)
    except ImportError:
        raise HcdgError("--format onnx: needs the onnx package (pip install 'hcdg[export]')") from None
    axes = {n: {0: "batch"} for n in ("image", *names)} if dynamic else None
    torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["image"], output_names=list(names),
                      dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)


def _runner(fmt: str, path: Path) -> Any:
    """A callable uint8 (B, S, S, 3) -> (3D, heatmaps) numpy, running the exported file; None
    when onnxruntime is missing."""
    import torch

    if fmt == "torchscript":
        ts = torch.jit.load(str(path), map_location="cpu")

        def run_ts(x: np.ndarray) -> list[np.ndarray]:
            with torch.inference_mode():
                return [t.numpy() for t in ts(torch.from_numpy(x))]

        return run_ts
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"image": x})


def check_export(fmt: str, path: Path, model: Any, size: int, batches: tuple[int, ...], seed: int = 0) -> dict[str, Any]:
    """Max |exported - eager| per output on random uint8 crops of each batch size."""
    import torch

    run = _runner(fmt, path)
    if run is None:
        return {"skipped": "onnxruntime is not installed (pip install 'hcdg[export]')"}
    rng = np.random.default_rng(seed)
    diffs = [0.0, 0.0]
    for b in batches:
        x = rng.integers(0, 256, size=(b, size, size, 3), dtype=np.uint8)
        with torch.inference_mode():
            ref = [t.numpy() for t in model(torch.from_numpy(x))]
        got = run(x)
        if len(got) != 2 or any(g.shape != r.shape for g, r in zip(got, ref)):
            raise HcdgError(f"{path}: exported graph returned shapes {[g.shape for g in got]} for batch {b}, "
                            f"expected {[r.shape for r in ref]}")
        diffs = [max(d, float(np.abs(g - r).max())) for d, g, r in zip(diffs, got, ref)]
    return {"batches": list(batches), "max_abs_diff": diffs, "tolerance": CHECK_TOL,
            "runtime": "onnxruntime CPU" if fmt == "onnx" else "torch.jit.load CPU"}


def run(cfg: ExportConfig) -> dict[str, Any]:
    """Export; returns {"out", "sidecar", "check", "sidecar_data"}."""
    import torch

    from hcdg.pipeline.deploy import DeployNet, output_names
    from hcdg.pipeline.joints import JOINT_NAMES
    from hcdg.store.run_model import load_run_model
    from hcdg.store.atomic import atomic_write_json
    from hcdg.store.checkpoints import sha256_file

    if not cfg.run:
        raise HcdgError("--run: the run folder is required")
    if not cfg.out:
        raise HcdgError("--out: the file to write is required")
    out = Path(cfg.out)
    if out.is_dir():
        raise HcdgError(f"--out {out}: is a folder; give a file name (e.g. hand.{'onnx' if cfg.format == 'onnx' else 'pt'})")
    if not out.parent.is_dir():
        raise HcdgError(f"--out {out}: the folder {out.parent} does not exist")
    loaded = load_run_model(cfg.run, cfg.checkpoint, "cpu")
    net = loaded.model
    mcfg = net.cfg
    size = int(cfg.input_size or mcfg.input_size)
    model = DeployNet(net, size).eval()
    names = output_names(mcfg.output)
    example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # tracer / legacy-exporter notices: noise for the user
            warnings.simplefilter("ignore")
            if cfg.format == "onnx":
                _export_onnx(model, example, tmp, names, cfg.dynamic_batch)
            else:
                with torch.inference_mode():
                    traced = torch.jit.trace(model, (example,), check_trace=False)
                torch.jit.save(traced, str(tmp))
            batches = (1, 5) if cfg.dynamic_batch else (1,)
            check = check_export(cfg.format, tmp, model, size, batches) if cfg.check else {"skipped": "--no-check"}
        if "max_abs_diff" in check and max(check["max_abs_diff"]) > CHECK_TOL:
            raise HcdgError(f"{out}: the exported graph differs from the model by {max(check['max_abs_diff']):.2e} "
                            f"(> {CHECK_TOL:g}); nothing written")
        hm = mcfg.heatmap_size
        what = ("root-relative / middle MCP->PIP bone, camera orientation of a right-hand crop"
                if mcfg.output == "xyz" else
                "the authors' normalised crop uvd: (u/S, v/S, ((z - z_root)/0.15 m + 1)/2)")
        sidecar = {
            "format": "hcdg-export/1", "file": out.name, "file_format": cfg.format, "sha256": sha256_file(tmp),
            "run": str(cfg.run), "weights": loaded.source, "checkpoint_step": loaded.step,
            "network": {"output": mcfg.output, "input_size": int(mcfg.input_size), "width_mult": mcfg.width_mult,
                        "hand_side": mcfg.hand_side, "input_offset": float(mcfg.input_offset)},
            "input": {"name": "image", "shape": ["batch" if cfg.dynamic_batch else 1, size, size, 3],
                      "dtype": "uint8", "layout": "NHWC", "channels": "RGB", "range": [0, 255],
                      "normalisation": f"inside the graph: /255, - {float(mcfg.input_offset):g}"
                                       + (f", bilinear resize {size} -> {mcfg.input_size}" if size != mcfg.input_size else ""),
                      "crop": "a square around ONE RIGHT hand (mirror left-hand crops left-right first); "
                              "see docs/predict.md"},
            "outputs": [
                {"name": names[0], "shape": ["batch", 21, 3], "dtype": "float32", "units": what,
                 "left_hands": "negate x (xyz) / u -> 1 - u (uvd) for crops that were mirrored"},
                {"name": names[1], "shape": ["batch", 21, hm, hm], "dtype": "float32",
                 "units": f"final CPM stage score maps (peak ~1 at the joint), heatmap px; crop px = "
                          f"(heatmap px + 0.5) * {mcfg.input_size / hm:g} - 0.5"},
            ],
            "joint_names": list(JOINT_NAMES), "joint_order": "FreiHAND (wrist, thumb..pinky MCP->PIP->DIP->tip)",
            "dynamic_batch": bool(cfg.dynamic_batch), "opset": OPSET if cfg.format == "onnx" else None,
            "torch": torch.__version__, "check": check, "seconds": round(time.perf_counter() - t0, 2),
        }  # fmt: skip
        sidecar_path = out.with_name(out.name + ".json")
        atomic_write_json(sidecar_path, sidecar)
        os.replace(tmp, out)
    except HcdgError:
        raise
    except (RuntimeError, torch.jit.Error) as exc:  # an exporter failure: one line
        raise HcdgError(f"--format {cfg.format}: export failed ({str(exc).splitlines()[0][:200]})") from None
    except OSError as exc:
        raise HcdgError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"out": out, "sidecar": sidecar_path, "check": check, "sidecar_data": sidecar}
