"""Training schedules: which losses train which part of the network at a given step.

hand3d (Zimmermann & Brox 2017, the paper's baseline [63]) did not train its network end to
end from scratch: PoseNet was trained on the 2D score-map loss alone (`training_posenet.py`,
from a CPM-MPII initialisation), and PosePrior/ViewPoint on score maps made from the ground
truth keypoints (`training_lifting.py`, `data/BinaryDbReader.py`: `scoremap` from `keypoint_uv21`),
before any joint fine-tuning. The paper's authors train everything together from one
initialisation. This module is that choice as a pure per-step plan (docs/model.md,
"Training schedules"):

* ``joint`` (the paper, the authors' code): every loss from step 0; the lifting networks read
  the last-stage maps with gradients, so L_pose also shapes the maps.
* ``staged``: L_heat alone for the first ``staged_steps`` steps (hand3d's PoseNet stage inside
  one run), then every loss as ``joint``.
* ``lifting-detached``: every loss from step 0, but the lifting networks read the maps with
  gradients stopped, so only L_heat (and L_con) shape the trunk (hand3d's separation).

``lifting_input="gt-then-pred"``: the lifting networks read the ground-truth target maps for
the first ``staged_steps`` steps (hand3d's `training_lifting.py`), then the predicted ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Schedule = Literal["joint", "staged", "lifting-detached"]
SCHEDULES = ("joint", "staged", "lifting-detached")
LiftingInput = Literal["pred", "gt-then-pred"]
LIFTING_INPUTS = ("pred", "gt-then-pred")


@dataclass(frozen=True)
class StepPlan:
    """What one training step does beyond Eq. 1.

    `pose_on` / `con_on`: whether L_pose / L_con enter the total loss (else weight 0; still logged).
    `lifting`: the maps PosePrior/ViewPoint read: "pred" (the last CPM stage, with gradients),
    "detached" (the same maps, gradients stopped) or "gt" (the ground-truth target maps).
    """

    pose_on: bool = True
    con_on: bool = True
    lifting: Literal["pred", "detached", "gt"] = "pred"


def step_plan(schedule: Schedule, lifting_input: LiftingInput, staged_steps: int, step_idx: int) -> StepPlan:
    """The plan of 0-based step `step_idx` (the first `staged_steps` steps are the first stage)."""
    first = step_idx < staged_steps
    if schedule == "staged" and first:  # L_heat only (lifting_input gt-then-pred is refused with it)
        return StepPlan(pose_on=False, con_on=False, lifting="pred")
    if lifting_input == "gt-then-pred" and first:
        return StepPlan(lifting="gt")
    return StepPlan(lifting="detached" if schedule == "lifting-detached" else "pred")


def check_schedule(schedule: str, lifting_input: str, staged_steps: int) -> str | None:
    """The problem with this combination (one line naming the option), or None when it is usable."""
    if schedule not in SCHEDULES:
        return f"--schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}"
    if lifting_input not in LIFTING_INPUTS:
        return f"--lifting-input: expected one of {', '.join(LIFTING_INPUTS)}, got {lifting_input!r}"
    if isinstance(staged_steps, bool) or not isinstance(staged_steps, int) or staged_steps < 0:
        return f"--staged-steps: expected an integer >= 0, got {staged_steps!r}"
    if schedule == "staged" and lifting_input == "gt-then-pred":
        return ("--lifting-input gt-then-pred: already keeps L_pose off the trunk for the first --staged-steps "
                "steps; use it with --schedule joint or lifting-detached, not staged")
    return None
