"""Do a run's heatmaps carry where the joints are? Its validation 2D error against the mean layout's.

The reference is the 2D error (crop px) of placing the mean ground-truth 2D layout of the
validation crops (crops are centred on the hand, so this layout already scores well). Maps
whose argmax is no closer than that carry no location: every number that takes its 2D from
the heatmaps (`2.5d-gtroot-gtbone`, the authors' STB protocol, `hcdg predict`'s 2D joints)
is then no better than a constant (docs/benchmarks.md "Learning", docs/model.md).
"""

from __future__ import annotations

import math
from typing import Any


def maps_localise(val_2d_px: Any, val_mean_2d_px: Any) -> bool | None:
    """True when the heatmap argmax beats the mean 2D layout (val_2d_px < val_mean_2d_px), False
    when it does not, None when either number is missing or not finite (nothing to judge)."""
    try:
        err, ref = float(val_2d_px), float(val_mean_2d_px)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(err) and math.isfinite(ref)):
        return None
    return err < ref


def no_location_message(val_2d_px: float, val_mean_2d_px: float, where: str) -> str:
    """One line for a run whose maps carry no location (`maps_localise` is False)."""
    return (f"{where}: the heatmaps carry no joint location: final validation 2D error {val_2d_px:.2f} px is not "
            f"below the mean 2D layout's {val_mean_2d_px:.2f} px, so 2D read from the heatmaps (2.5D protocols, "
            "`hcdg predict` 2D) is no better than a constant; train longer or try --schedule lifting-detached "
            "(docs/model.md, Training schedules)")
