"""Joint orders and index maps (docs/sources.md#joint-orders). Constants only.

hcdg's one internal convention is FreiHAND order: wrist, then thumb, index,
middle, ring, pinky, each MCP -> PIP -> DIP -> tip; metres; camera frame; right
hand. Index maps follow `target[i] = source[MAP[i]]`, i.e. `xyz_target = xyz_source[MAP]`.
"""

from __future__ import annotations

import numpy as np

N_JOINTS = 21

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
PHALANGES = ("mcp", "pip", "dip", "tip")

#: Joint names in FreiHAND order (the internal convention).
JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{f}_{p}" for f in FINGERS for p in PHALANGES)

WRIST = 0
#: Index of each finger's MCP in FreiHAND order.
MCP = {f: 1 + 4 * i for i, f in enumerate(FINGERS)}
MIDDLE_MCP = MCP["middle"]  # 9
MIDDLE_PIP = MIDDLE_MCP + 1  # 10
PINKY_MCP = MCP["pinky"]  # 17

#: Parent of each joint (kinematic tree, FreiHAND order); the wrist has none (-1).
PARENTS: tuple[int, ...] = (-1,) + tuple(
    WRIST if p == 0 else 1 + 4 * fi + p - 1 for fi in range(5) for p in range(4)
)
#: (parent, child) bones, 20 of them.
BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[j], j) for j in range(1, N_JOINTS))

#: RHD per-hand order (wrist, then each finger TIP -> MCP) <-> FreiHAND; its own inverse.
RHD_TO_FREIHAND = np.array([0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17])
FREIHAND_TO_RHD = RHD_TO_FREIHAND

#: STB order (PALM centre, then pinky, ring, middle, index, thumb, each MCP -> tip) -> FreiHAND.
#: Joint 0 stays the palm centre: see `hands.stb_palm_to_wrist` for the root conversion.
STB_TO_FREIHAND = np.array([0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4])

#: STB palm -> wrist extrapolation factor (one published convention, docs/sources.md#joint-orders):
#: wrist = middle_mcp + STB_PALM_TO_WRIST * (palm - middle_mcp).
STB_PALM_TO_WRIST = 2.2
