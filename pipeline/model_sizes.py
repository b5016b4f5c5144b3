"""Which network sizes hcdg builds (torch-free: configs check them before torch is imported)."""

from __future__ import annotations

#: Upper bounds of the network's size options: 4x the paper's width (1.0) and input (256 px, §4.1).
#: Parameters grow with width_mult**2 (measured at 256 px, Branch1: 21.4 M at width 1.0, 338 M at
#: 4.0, i.e. 1.35 GB of fp32 weights, ~5.4 GB with Adam's moments and gradients) and activations
#: with input_size**2 * width_mult. Beyond the bounds torch asks for tens of GB and fails with a
#: traceback (issue 23's catalogue: 17-147 GB).
MAX_WIDTH_MULT = 4.0
MAX_INPUT_SIZE = 1024


def size_problems(width_mult: float, input_size: int) -> list[tuple[str, str]]:
    """[(field, what is wrong)] of the network's size options; empty when it can be built."""
    out = []
    if not 0 < width_mult <= MAX_WIDTH_MULT:
        out.append(("width_mult", f"expected > 0 and <= {MAX_WIDTH_MULT:g} (4x the paper's width), got {width_mult!r}"))
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 16 or input_size % 8 \
            or input_size > MAX_INPUT_SIZE:
        out.append(("input_size", f"expected a multiple of 8 in [16, {MAX_INPUT_SIZE}] (4x the paper's 256 px), "
                                  f"got {input_size!r}"))
    return out
