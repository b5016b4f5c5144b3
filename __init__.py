"""hcdg: image-free domain generalization via CLIP for 3D hand pose estimation.

Stage one (`hcdg embed`) runs a frozen CLIP once over every source image and all
3,920 prompts of the paper's Table 2 into a feature store; stage two
(`hcdg train`) trains the hand pose network from those cached features.

Layout: `hcdg.pipeline` is *what* is computed (pure), `hcdg.stages` is *when*
(one file per stage), `hcdg.store` is *where the bytes live*.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "predict", "__version__"]


def load_model(run_dir: str | Path, device: str = "cpu", checkpoint: str | None = None) -> Any:
    """The network of a run folder (`hcdg train` or `hcdg import authors`), in eval mode.

    Returns a `hcdg.pipeline.model.HandPoseNet` (Branch1 only) on `device`. Call
    ``net.predict(image, hand_side)`` with image (B,3,S,S) float in [0,1] and hand_side
    (B,2) one-hot [left, right]; it returns a dict with ``xyz_rel_norm`` (B,21,3) and
    ``heatmaps`` (list of (B,21,S/8,S/8), last = the final CPM stage). ``net.cfg`` is its
    `ModelConfig` (``net.cfg.output``: "xyz" or "uvd"; ``net.cfg.input_size``: S).
    `checkpoint`: None = the finished model (else the newest checkpoint), "final",
    "latest" or a checkpoint folder. See docs/api.md.
    """
    from hcdg.store.run_model import load_run_model

    with _argument_names():
        return load_run_model(run_dir, checkpoint, device).model


def predict(run_dir: str | Path, images: Any, boxes: Any = None, **options: Any) -> Any:
    """2D + 3D hand joints of a run folder's network on your own images, as a pandas DataFrame.

    `images`: image files, folders of them, and/or (H, W, 3) uint8 RGB arrays. `boxes`: None
    (the whole image is the crop), a .json / .npy file as `hcdg predict --boxes` takes, an
    (N, 4) array of [x, y, w, h] in input order, or a {file name: [x, y, w, h]} dict.
    `options`: side ("auto" | "left" | "right"), whole_image ("pad" | "center"),
    bone_length_mm, K (3x3, [fx, fy, cx, cy] or "fx,fy,cx,cy"), device, checkpoint,
    batch_size, progress. One row per readable image (unreadable ones are skipped with a
    line on stderr and listed in ``frame.attrs["skipped"]``); the columns are those of
    `hcdg predict`'s predictions.parquet (docs/predict.md); joint columns are flattened,
    ``hcdg.pipeline.predict.joint_array(frame, "uv_px")`` gives (N, 21, 2).
    """
    from hcdg.stages.predict import predict_frame

    with _argument_names():
        return predict_frame(run_dir, images, boxes, **options)


#: CLI flags whose Python argument is named differently (others: "--bone-length-mm" -> "bone_length_mm").
_ARGUMENT_OF_FLAG = {"run": "run_dir", "root": "root"}


@contextlib.contextmanager
def _argument_names() -> Iterator[None]:
    """Errors of the Python API name its arguments ("checkpoint=..."), not the CLI's flags."""
    from hcdg.pipeline.errors import HcdgError

    try:
        yield
    except HcdgError as exc:
        def arg(m: re.Match[str]) -> str:  # "--run X: ..." -> "run_dir=X: ...", "--out: ..." -> "out: ..."
            name = m.group(1)
            return _ARGUMENT_OF_FLAG.get(name, name.replace("-", "_")) + ("=" if m.group(2) == " " else "")

        text = re.sub(r"(?<![\w`-])--([A-Za-z][A-Za-z0-9-]*)( |(?=[:,.)]|$))", arg, str(exc))
        raise HcdgError(text) from None
