"""Image styles: the FreiHAND-like source style and target styles from Table 2's words.

A `Style` names how one image looks, in the words of the paper's prompt table
(Table 2, docs/sources.md#prompts, `hcdg.pipeline.prompts`):

* **source** (FreiHAND-like): one light skin tone, neutral light, a green-screen
  background (FreiHAND version 0). FreiHAND's versions 1-3 and its evaluation
  split replace the green screen by *source backgrounds* -- muted indoor clutter
  or a plain wall (`SOURCE_BACKGROUNDS`), never a Table 2 scene -- and recolour the
  skin slightly, as the real set's post-processing does.
* **target**: hand colour x colour word x background word from Table 2:
  hand colours white, dark brown, peach, brown, pale yellow, light beige, black;
  colour words mountain, lake, sky blue, dotted, flower (procedural scenes),
  bright / dark (lighting: the image is brightened / darkened), and the plain
  colours green, purple, white, yellow, black, orange, red, blue, gray, beige,
  pink, brown; background words "background" (the texture fills the frame) or
  "room" (a room whose wall carries the texture, or whose window shows the scene).

Spec strings (the CLI's `--style`): "source", "mixed-target" (every image draws
its own target style), or "HAND_COLOUR:COLOUR[:BACKGROUND]" with any field "*"
(drawn per image), e.g. "black:dotted:room", "peach:*", "*:lake".

Everything here is vectorised numpy on (H, W, 3) float32 images in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.prompts import BACKGROUNDS, COLOURS, HAND_COLOURS
from hcdg.pipeline.synth.render import Lighting, RenderLayer

#: Table 2 hand colours (`prompts.HAND_COLOURS`) as linear-ish RGB in [0, 1].
HAND_RGB: dict[str, tuple[float, float, float]] = {
    "white": (0.97, 0.91, 0.87),
    "dark brown": (0.36, 0.22, 0.15),
    "peach": (1.00, 0.78, 0.62),
    "brown": (0.58, 0.37, 0.22),
    "pale yellow": (0.97, 0.90, 0.58),
    "light beige": (0.91, 0.82, 0.69),
    "black": (0.17, 0.13, 0.11),
}
#: The source (FreiHAND-like) skin: one light skin tone.
SOURCE_SKIN = "light skin"
SOURCE_SKIN_RGB = (0.88, 0.66, 0.53)
#: Table 2 colour words drawn as plain colours (the others are scenes or lighting).
PLAIN_RGB: dict[str, tuple[float, float, float]] = {
    "green": (0.20, 0.55, 0.22),
    "purple": (0.45, 0.22, 0.62),
    "white": (0.94, 0.94, 0.93),
    "yellow": (0.96, 0.84, 0.20),
    "black": (0.06, 0.06, 0.07),
    "orange": (0.96, 0.55, 0.15),
    "red": (0.80, 0.12, 0.12),
    "blue": (0.15, 0.30, 0.82),
    "gray": (0.50, 0.50, 0.50),
    "beige": (0.88, 0.80, 0.64),
    "pink": (0.96, 0.62, 0.76),
    "brown": (0.45, 0.30, 0.18),
}
SCENES = ("mountain", "lake", "sky blue", "dotted", "flower")
LIGHTING_WORDS = ("bright", "dark")
#: Distinct Table 2 colour words (the table lists "yellow" twice).
COLOUR_WORDS: tuple[str, ...] = tuple(dict.fromkeys(COLOURS))
GREEN_SCREEN = "green screen"
#: Backgrounds of FreiHAND's versions 1-3 and evaluation images (not Table 2 scenes).
SOURCE_BACKGROUNDS = ("indoor clutter", "plain wall")
#: Exposure of the whole image per lighting word.
EXPOSURE = {"neutral": 1.0, "bright": 1.45, "dark": 0.38}

assert set(HAND_RGB) == set(HAND_COLOURS)
assert set(COLOUR_WORDS) == set(PLAIN_RGB) | set(SCENES) | set(LIGHTING_WORDS)


@dataclass(frozen=True)
class Style:
    """How one image looks.

    Attributes:
        domain: "source" or "target".
        hand_colour: a Table 2 hand colour, or "light skin" (source).
        colour: a Table 2 colour word, "green screen", or a source background.
        background: "background" or "room" (Table 2's last column).
        lighting: "neutral", "bright" or "dark".
    """

    domain: str
    hand_colour: str
    colour: str
    background: str = "background"
    lighting: str = "neutral"

    @property
    def prompt(self) -> str:
        """The Table 2 words this image fits: "{hand colour} hand with {colour} {background}"."""
        return f"{self.hand_colour} hand with {self.colour} {self.background}"

    def to_dict(self) -> dict:
        return {**asdict(self), "prompt": self.prompt}


SOURCE = Style("source", SOURCE_SKIN, GREEN_SCREEN)


@dataclass(frozen=True)
class StyleSpec:
    """A parsed `--style`: fixed fields, or None where each image draws its own."""

    source: bool
    hand_colour: str | None = None
    colour: str | None = None
    background: str | None = None


def parse_style(spec: str) -> StyleSpec:
    """Parse "source", "mixed-target" or "HAND_COLOUR:COLOUR[:BACKGROUND]" (fields may be "*")."""
    s = spec.strip()
    if s == "source":
        return StyleSpec(source=True)
    if s == "mixed-target":
        return StyleSpec(source=False)
    parts = [p.strip() for p in s.split(":")]
    if len(parts) not in (2, 3):
        raise HcdgError(
            f"--style {spec!r}: expected 'source', 'mixed-target' or HAND_COLOUR:COLOUR[:room|background] "
            f"(e.g. 'black:dotted:room')"
        )
    if len(parts) == 2:
        parts.append("*")
    for value, allowed, what in zip(parts, (HAND_COLOURS, COLOUR_WORDS, BACKGROUNDS),
                                    ("hand colour", "colour", "background")):
        if value != "*" and value not in allowed:
            raise HcdgError(f"--style {spec!r}: unknown {what} {value!r} (expected * or one of {', '.join(allowed)})")
    hand, colour, bg = (None if p == "*" else p for p in parts)
    return StyleSpec(source=False, hand_colour=hand, colour=colour, background=bg)


def draw_style(spec: StyleSpec, rng: np.random.Generator) -> Style:
    """One image's style under `spec` (source specs give `SOURCE`)."""
    if spec.source:
        return SOURCE
    hand = spec.hand_colour or HAND_COLOURS[rng.integers(len(HAND_COLOURS))]
    colour = spec.colour or COLOUR_WORDS[rng.integers(len(COLOUR_WORDS))]
    bg = spec.background or BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    lighting = colour if colour in LIGHTING_WORDS else "neutral"
    return Style("target", hand, colour, bg, lighting)


def lighting_for(style: Style, rng: np.random.Generator) -> Lighting:
    """A Lambert light for `style`: a jittered frontal key light, stronger/weaker per lighting word."""
    d = np.array([-0.35, -0.55, -0.76]) + rng.normal(0.0, 0.25, 3)
    d[2] = -abs(d[2]) - 0.3
    amb, dif = {"neutral": (0.38, 0.70), "bright": (0.55, 0.75), "dark": (0.30, 0.75)}[style.lighting]
    return Lighting(direction=tuple(float(x) for x in d), ambient=amb, diffuse=dif)


def skin_rgb(style: Style, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    """(3,) hand colour of `style`, each channel times U(1 - jitter, 1 + jitter)."""
    base = np.array(SOURCE_SKIN_RGB if style.hand_colour == SOURCE_SKIN else HAND_RGB[style.hand_colour])
    return base * rng.uniform(1.0 - jitter, 1.0 + jitter, 3) if jitter else base


# --- procedural backgrounds -------------------------------------------------------------


def _smooth(rng: np.random.Generator, h: int, w: int, cell_px: float) -> np.ndarray:
    """(h, w) float32 smooth value noise in [0, 1]: a random grid of `cell_px` cells, bilinear."""
    gh, gw = max(2, int(np.ceil(h / cell_px)) + 1), max(2, int(np.ceil(w / cell_px)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.BILINEAR), dtype=np.float32)


def _jitter(rgb, rng: np.random.Generator, amount: float = 0.06) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3).astype(np.float32), 0.0, 1.0)


def _plain(h: int, w: int, rgb, rng: np.random.Generator) -> np.ndarray:
    base = _jitter(rgb, rng)
    light = 0.82 + 0.3 * _smooth(rng, h, w, max(h, w) / 2.0)
    ramp = np.linspace(1.05, 0.92, h, dtype=np.float32)[:, None]
    return base * (light * ramp)[..., None] + 0.025 * (_smooth(rng, h, w, 3.0)[..., None] - 0.5)


def _green_screen(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = _jitter((0.16, 0.56, 0.24), rng, 0.03)
    light = 0.78 + 0.3 * _smooth(rng, h, w, max(h, w) / 1.5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vign = 1.0 - 0.25 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    return base * (light * vign)[..., None]


def _sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    top, bottom = _jitter((0.30, 0.58, 0.92), rng, 0.05), _jitter((0.68, 0.85, 0.98), rng, 0.03)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3))
    cloud = _smooth(rng, h, w, w / 4.0) * 0.6 + _smooth(rng, h, w, w / 10.0) * 0.4
    a = np.clip((cloud - 0.55) * 3.0, 0.0, 0.9)[..., None]
    return sky * (1 - a) + a * np.float32(0.97)


def _ridge(rng: np.random.Generator, w: int, level: float, amp: float) -> np.ndarray:
    x = np.arange(w, dtype=np.float32) / w
    y = np.full(w, level, np.float32)
    for k in range(4):
        f = rng.uniform(1.0, 3.0) * 2 ** k
        y += amp / 2 ** k * np.sin(2 * np.pi * f * x + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return y


def _mountain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky(h, w, rng).copy()
    rows = np.arange(h, dtype=np.float32)[:, None] / h
    far_ridge = _ridge(rng, w, rng.uniform(0.30, 0.45), 0.10)[None]
    far = rows > far_ridge
    snow = far & (rows < far_ridge + _ridge(rng, w, 0.05, 0.02)[None])
    near = rows > _ridge(rng, w, rng.uniform(0.55, 0.7), 0.07)[None]
    shade = (0.85 + 0.2 * _smooth(rng, h, w, w / 12.0))[..., None]
    img[far] = (_jitter((0.42, 0.45, 0.55), rng) * shade)[far]
    img[snow] = (np.float32(0.93) * shade)[snow]
    img[near] = (_jitter((0.20, 0.36, 0.16), rng) * shade)[near]
    return img


def _lake(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky(h, w, rng).copy()
    rows = np.arange(h, dtype=np.float32)[:, None] / h
    horizon = rng.uniform(0.35, 0.5)
    hills = (rows > _ridge(rng, w, horizon - 0.06, 0.03)[None]) & (rows <= horizon)
    water = np.broadcast_to(rows > horizon, (h, w))
    img[hills] = (_jitter((0.16, 0.30, 0.14), rng) * (0.8 + 0.3 * _smooth(rng, h, w, 6.0))[..., None])[hills]
    ripple = 0.85 + 0.15 * np.sin(rows * h * rng.uniform(0.5, 1.0) + 6 * _smooth(rng, h, w, w / 8.0))
    deep, shallow = _jitter((0.08, 0.25, 0.45), rng, 0.04), _jitter((0.25, 0.5, 0.65), rng, 0.04)
    t = np.clip((rows - horizon) / (1 - horizon), 0, 1)[..., None]
    img[water] = ((shallow * (1 - t) + deep * t) * ripple[..., None])[water]
    return img


def _cells(h: int, w: int, cell: int):
    """Per-pixel cell indices and offsets (pixels) within a `cell`-pixel grid."""
    yy, xx = np.mgrid[0:h, 0:w]
    return yy // cell, xx // cell, (yy % cell).astype(np.float32), (xx % cell).astype(np.float32)


def _dotted(h: int, w: int, rng: np.random.Generator, base=None) -> np.ndarray:
    cell = int(rng.integers(max(8, min(h, w) // 20), max(12, min(h, w) // 7)))
    pal = rng.random((2, 3)).astype(np.float32)
    bg = _jitter(base, rng) if base is not None else pal[0] * 0.5 + 0.5
    dot = 1.0 - bg if rng.random() < 0.5 else pal[1]
    cy, cx, oy, ox = _cells(h, w, cell)
    r = cell * rng.uniform(0.18, 0.38)
    inside = (oy - cell / 2) ** 2 + (ox - cell / 2) ** 2 < r * r
    img = np.broadcast_to(bg, (h, w, 3)).copy()
    img[inside] = dot
    return img * (0.9 + 0.15 * _smooth(rng, h, w, w / 3.0))[..., None]


def _flower(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _jitter((0.18, 0.42, 0.14), rng) * (0.7 + 0.5 * _smooth(rng, h, w, 4.0))[..., None]
    cell = int(rng.integers(max(10, min(h, w) // 12), max(14, min(h, w) // 5)))
    cy, cx, oy, ox = _cells(h, w, cell)
    gh, gw = cy.max() + 1, cx.max() + 1
    petals = np.array([[0.95, 0.35, 0.55], [0.98, 0.85, 0.15], [0.85, 0.12, 0.15], [0.95, 0.95, 0.95],
                       [0.6, 0.35, 0.85], [1.0, 0.6, 0.2]], np.float32)
    colour = petals[rng.integers(len(petals), size=(gh, gw))][cy, cx]
    jy, jx = rng.uniform(0.3, 0.7, (2, gh, gw)).astype(np.float32) * cell
    dy, dx = oy - jy[cy, cx], ox - jx[cy, cx]
    rad = np.sqrt(dy * dy + dx * dx)
    phase = rng.uniform(0, 2 * np.pi, (gh, gw)).astype(np.float32)[cy, cx]
    petal_r = cell * 0.36 * (0.55 + 0.45 * np.abs(np.cos(2.5 * np.arctan2(dy, dx) + phase)))
    present = (rng.random((gh, gw)) < 0.8)[cy, cx]
    petal = present & (rad < petal_r)
    centre = present & (rad < cell * 0.09)
    img[petal] = colour[petal]
    img[centre] = np.array([0.55, 0.38, 0.05], np.float32)
    return img


def _clutter(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Muted indoor clutter: a desaturated wall with blurred boxes (source backgrounds)."""
    img = _plain(h, w, rng.uniform(0.35, 0.7) * np.ones(3) + rng.uniform(-0.05, 0.05, 3), rng)
    for _ in range(int(rng.integers(4, 9))):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        bh, bw = int(rng.integers(h // 10, h // 2)), int(rng.integers(w // 10, w // 2))
        col = rng.uniform(0.2, 0.8) + rng.uniform(-0.08, 0.08, 3)  # grey-ish: low saturation
        img[y0 : y0 + bh, x0 : x0 + bw] = col.astype(np.float32)
    small = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).resize((max(w // 6, 2), max(h // 6, 2)))
    return np.asarray(small.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _room(h: int, w: int, style: Style, rng: np.random.Generator) -> np.ndarray:
    """A room: textured wall (or a window onto the scene), floor, skirting board."""
    c = style.colour
    if c in PLAIN_RGB:
        wall = _plain(h, w, PLAIN_RGB[c], rng)
    elif c == "dotted":
        wall = _dotted(h, w, rng)
    elif c == "flower":
        wall = _flower(h, w, rng) * 0.9 + 0.1
    else:  # scenes seen through a window, bright/dark rooms: a pale wall
        wall = _plain(h, w, (0.85, 0.80, 0.70), rng)
        if c in ("mountain", "lake", "sky blue"):
            scene = {"mountain": _mountain, "lake": _lake, "sky blue": _sky}[c](h, w, rng)
            y0, y1 = int(h * rng.uniform(0.05, 0.2)), int(h * rng.uniform(0.45, 0.6))
            x0, x1 = int(w * rng.uniform(0.05, 0.35)), int(w * rng.uniform(0.65, 0.95))
            frame = max(2, w // 60)
            wall[y0 - frame:y1 + frame, x0 - frame:x1 + frame] = np.float32(0.95)
            wall[y0:y1, x0:x1] = scene[y0:y1, x0:x1]
    floor_y = int(h * rng.uniform(0.62, 0.8))
    img = wall
    yy = np.arange(h - floor_y, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    plank = 0.85 + 0.15 * np.sin((xx - w / 2) / (1 + yy / 10.0) * 0.9) ** 2
    img[floor_y:] = _jitter((0.50, 0.34, 0.20), rng) * plank[..., None]
    img[floor_y - max(2, h // 50):floor_y] = np.float32(0.92)
    return img


#: Backgrounds are drawn at 1/BACKGROUND_DOWNSCALE resolution and upscaled bilinearly: 4x cheaper,
#: and slightly out of focus behind the in-focus hand, as in photographs.
BACKGROUND_DOWNSCALE = 2


def _background_raw(style: Style, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c = style.colour
    if c == GREEN_SCREEN:
        return _green_screen(h, w, rng)
    if c == "indoor clutter":
        return _clutter(h, w, rng)
    if c == "plain wall":
        return _plain(h, w, rng.uniform(0.45, 0.85) * np.array([1.0, 0.97, 0.92]), rng)
    if style.background == "room":
        return _room(h, w, style, rng)
    if c in PLAIN_RGB:
        return _plain(h, w, PLAIN_RGB[c], rng)
    if c in LIGHTING_WORDS:  # a bright / dark frame: an ordinary scene, the exposure does the rest
        pick = rng.integers(3)
        return (_sky, _clutter, lambda hh, ww, r: _plain(hh, ww, (0.7, 0.68, 0.62), r))[pick](h, w, rng)
    return {"mountain": _mountain, "lake": _lake, "sky blue": _sky, "dotted": _dotted, "flower": _flower}[c](
        h, w, rng
    )


def background(style: Style, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) uint8 background for `style` (before lighting/exposure)."""
    d = BACKGROUND_DOWNSCALE
    hs, ws = max(16, -(-h // d)), max(16, -(-w // d))
    raw = _background_raw(style, hs, ws, rng)
    u8 = (np.clip(raw, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.asarray(Image.fromarray(u8).resize((w, h), Image.BILINEAR))


# --- compositing ------------------------------------------------------------------------


def _expose(x: np.ndarray, lighting: str) -> np.ndarray:
    """Apply the lighting word's exposure to float values in [0, 1]."""
    e = np.float32(EXPOSURE[lighting])
    if e > 1:  # brighten, saturating smoothly towards white
        return 1.0 - (1.0 - np.clip(x, 0.0, 1.0)) ** e
    return x * e if e < 1 else x


def _quantise(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def compose(
    layer: RenderLayer,
    bg: np.ndarray,
    skin: np.ndarray,
    lighting: str,
    rng: np.random.Generator,
    noise_levels: int = 3,
) -> np.ndarray:
    """The final (H, W, 3) uint8 image: shaded skin over `bg` (uint8), soft edges, exposure, noise.

    `noise_levels`: per-channel sensor noise, the difference of two integers uniform in
    0..2^b - 1, b = bit length of n (n = 3: -3..3 grey levels, std 1.6; 0 = none).
    Float work happens in the hand's bounding box only; the rest of the frame goes through a
    256-entry lookup table, so large frames (STB's 640x480) stay cheap.
    """
    mask = layer.mask
    h, w = mask.shape
    if EXPOSURE[lighting] == 1.0:
        out = np.array(bg, dtype=np.uint8, copy=True)
    else:
        out = _quantise(_expose(np.arange(256, dtype=np.float32) / np.float32(255.0), lighting))[bg]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows):
        y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, h)
        x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, w)
        m = mask[y0:y1, x0:x1]
        tex = 1.0 + 0.04 * (_smooth(rng, y1 - y0, x1 - x0, 2.5) - 0.5)
        hand = (layer.shade[y0:y1, x0:x1] * tex)[..., None] * np.asarray(skin, np.float32)
        win = np.where(m[..., None], hand, bg[y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255))
        # Anti-alias the silhouette: each pixel on either side of it takes its 3x3 neighbourhood mean.
        mp = np.pad(m, 1, mode="edge")
        hh, ww = m.shape
        inner = np.ones_like(m)
        outer = np.zeros_like(m)
        for i in range(3):
            for j in range(3):
                nb = mp[i : i + hh, j : j + ww]
                inner &= nb
                outer |= nb
        ey, ex = np.nonzero(outer & ~inner)
        if len(ey):
            acc = np.zeros((len(ey), 3), np.float32)
            for i in (-1, 0, 1):
                yy = np.clip(ey + i, 0, hh - 1)
                for j in (-1, 0, 1):
                    acc += win[yy, np.clip(ex + j, 0, ww - 1)]
            win[ey, ex] = acc * np.float32(1 / 9)
        out[y0:y1, x0:x1] = _quantise(_expose(win, lighting))
    if noise_levels:  # sensor noise: difference of two uniform integers, from raw random bytes (cheap)
        bits = int(noise_levels).bit_length()
        r = np.frombuffer(rng.bytes(out.size), np.uint8).reshape(out.shape)
        noisy = out.astype(np.int16)
        noisy += r & ((1 << bits) - 1)
        noisy -= (r >> 4) & ((1 << bits) - 1)
        np.clip(noisy, 0, 255, out=noisy)
        out = noisy.astype(np.uint8)
    return out
