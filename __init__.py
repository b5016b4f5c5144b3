"""hcdg: image-free domain generalization via CLIP for 3D hand pose estimation.

Stage one (`hcdg embed`) runs a frozen CLIP once over every source image and all
3,920 prompts of the paper's Table 2 into a feature store; stage two
(`hcdg train`) trains the hand pose network from those cached features.

Layout: `hcdg.pipeline` is *what* is computed (pure), `hcdg.stages` is *when*
(one file per stage), `hcdg.store` is *where the bytes live*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]


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
    from hcdg.stages.eval import load_run_model

    return load_run_model(run_dir, checkpoint, device).model
