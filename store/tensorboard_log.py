"""A TensorBoard view of a run's training metrics (optional: `pip install hcdg[tb]`).

`hcdg train --tensorboard` mirrors every row `store.metrics_log.MetricsLog` appends into
``RUN_DIR/tensorboard/`` as scalars: ``train/<column>`` (losses, learning rate, samples/s,
Branch2 diagnostics d_pos, d_neg, e1_norm, e2_norm) and ``val/<column>`` (validation EPE, the
mean-pose reference, 2D error of the heatmaps and the mean layout), at the row's step. A sweep
writes one such folder per point (each point is a run folder), so `tensorboard --logdir SWEEP`
shows every point as its own run. ``metrics.parquet`` stays the source of truth; the event
files are a view and may be deleted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError

TB_DIR = "tensorboard"
_SKIP = ("kind", "step", "epoch", "wall_s")


def require_tensorboard() -> None:
    """HcdgError (one line) when the optional `tensorboard` package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise HcdgError("--tensorboard: needs the optional package tensorboard "
                        "(pip install 'hcdg[tb]' or pip install tensorboard)") from None


class TensorBoardMirror:
    """Writes metrics rows as TensorBoard scalars into ``RUN_DIR/tensorboard``."""

    def __init__(self, run_dir: str | Path, purge_step: int | None = None) -> None:
        """`purge_step`: on resume, events at or past it are dropped (they are redone)."""
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run_dir) / TB_DIR
        self.writer = SummaryWriter(log_dir=str(self.dir), purge_step=purge_step)

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            kind, step = str(row.get("kind", "train")), int(row["step"])
            for key, value in row.items():
                if key in _SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if math.isfinite(float(value)):
                    self.writer.add_scalar(f"{kind}/{key}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
