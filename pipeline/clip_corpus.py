"""The synthetic "web" corpus of the synthetic CLIP: rendered hands and their captions.

OpenAI's CLIP learnt what "a dark brown hand with a mountain background" looks like
from web images with captions. hcdg's stand-in learns it from the synthetic
renderer (`hcdg.pipeline.synth`): each corpus image is drawn in a style whose
words the renderer records (`styles.Style`: hand colour, colour word, background
word), and its caption is composed from those words.

* **Images** (`render_corpus`): poses and cameras come from `writers.plan_poses`
  of the three formats (FreiHAND's hand-centred crops, RHD's 320 px frames, STB's
  640x480 frames), so the corpus sees hands as large and as small as every
  dataset shows them; images are rendered at 1/`DOWNSCALE` of the format's size
  (the CLIP sees 64 px anyway). Styles: `SOURCE_SHARE` source styles (light skin
  on a green screen, indoor clutter or a plain wall: FreiHAND's looks) and the
  rest every Table 2 style, drawn per image (`styles.draw_style`).
* **Seeds and leakage**: a corpus at seed `s` draws its poses from the very random
  streams a synthetic dataset at seed `s` uses (`plan_poses(s, ...)`), so a corpus
  and a pose set of the same seed share hand poses. The corpus therefore lives at
  seeds far from the pose sets' (`CORPUS_SEED`, held-out `HELDOUT_SEED`) and
  `overlapping_seeds` names any clash; the stage and `hcdg embed --clip` refuse one.
* **Captions** (`caption`): Table 2's grammar, "{head} {hand colour} {hand}
  {colour} {background}" with all 7 heads and both hand words, in
  `TABLE2_SHARE` of the draws; the rest are other wordings (`OTHER_TEMPLATES`),
  some naming only the hand or only the background, so that prompts are not
  memorised strings. A fresh caption is drawn for an image every time it is used.

Pure: numpy in, numpy out; no files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hcdg.pipeline.prompts import BACKGROUNDS, HAND_COLOURS, HANDS, HEADS
from hcdg.pipeline.synth import render as R
from hcdg.pipeline.synth import styles as S
from hcdg.pipeline.synth import writers as W

#: Seed of the training corpus: far above any seed the pose sets use (the demo uses 0..2,
#: `hcdg synth` defaults to 0, benchmarks to small integers).
CORPUS_SEED = 1_000_003
#: Seed of the held-out zero-shot images (disjoint from the corpus and from the pose sets).
HELDOUT_SEED = 1_000_033
#: Share of source-style images (FreiHAND's looks) in the corpus; the rest are Table 2 styles.
SOURCE_SHARE = 0.2
#: Share of captions in Table 2's exact grammar (the rest: `OTHER_TEMPLATES`).
TABLE2_SHARE = 0.5
#: Camera kinds of the corpus images (formats whose camera policy draws the view) and their shares.
CAMERAS: tuple[tuple[str, str, float], ...] = (
    ("freihand", "training", 0.5), ("rhd", "evaluation", 0.25), ("stb", "B1Counting", 0.25),
)
#: Render at 1/DOWNSCALE of each format's image size (FreiHAND 224 -> 112, RHD 320 -> 160, STB 640x480 -> 160x120).
DOWNSCALE = {"freihand": 2, "rhd": 2, "stb": 4}
#: Other wordings: {h} hand colour, {c} colour word, {b} background word.
OTHER_TEMPLATES: tuple[str, ...] = (
    "a {h} hand in front of a {c} {b}",
    "a {c} {b} behind a {h} hand",
    "a hand with {h} skin and a {c} {b}",
    "close-up of a {h} hand, {c} {b}",
    "{h} hand, {c} {b}",
    "a {h} hand",
    "a {h} coloured hand",
    "a hand on a {c} {b}",
    "a {c} {b}",
    "an image with a {c} {b}",
)


@dataclass(frozen=True)
class CorpusSpec:
    """Which corpus: `n` images drawn at `seed` (poses, styles, pixels all follow from it)."""

    n: int
    seed: int = CORPUS_SEED


@dataclass(frozen=True)
class Corpus:
    """Rendered corpus images and their styles.

    Attributes:
        images: (N, H, W, 3) uint8 after the CLIP's own resize/crop (H = W = the CLIP's input size).
        styles: N `styles.Style` records (what `hcdg_synth.json` would record for each image).
        cameras: N camera kinds ("freihand" | "rhd" | "stb").
    """

    images: np.ndarray
    styles: tuple[S.Style, ...]
    cameras: tuple[str, ...]


def camera_counts(n: int) -> dict[str, int]:
    """Images per camera kind for a corpus of `n` (shares `CAMERAS`, remainder to FreiHAND)."""
    counts = {fmt: int(n * share) for fmt, _, share in CAMERAS}
    counts["freihand"] += n - sum(counts.values())
    return counts


def draw_corpus_style(rng: np.random.Generator) -> S.Style:
    """A source style (`SOURCE_SHARE`) or any Table 2 style, drawn per image."""
    if rng.random() < SOURCE_SHARE:
        backdrop = (S.GREEN_SCREEN, *S.SOURCE_BACKGROUNDS)[rng.integers(3)]
        return S.Style("source", S.SOURCE_SKIN, backdrop)
    return S.draw_style(S.StyleSpec(source=False), rng)


def caption(style: S.Style, rng: np.random.Generator) -> str:
    """One caption of `style`'s recorded words: Table 2's grammar or another wording."""
    h, c, b = style.hand_colour, style.colour, style.background
    if rng.random() < TABLE2_SHARE:
        head = HEADS[rng.integers(len(HEADS))]
        hand = HANDS[rng.integers(len(HANDS))]
        return f"{head} {h} {hand} {c} {b}"
    return OTHER_TEMPLATES[rng.integers(len(OTHER_TEMPLATES))].format(h=h, c=c, b=b)


def captions(styles_: Sequence[S.Style], rng: np.random.Generator) -> list[str]:
    """One fresh caption per style."""
    return [caption(s, rng) for s in styles_]


def vocabulary() -> dict[str, list[str]]:
    """The words the corpus captions use, per slot (for the model card)."""
    colours = list(S.COLOUR_WORDS) + [S.GREEN_SCREEN, *S.SOURCE_BACKGROUNDS]
    return {"heads": list(HEADS), "hand_colours": list(HAND_COLOURS) + [S.SOURCE_SKIN], "hands": list(HANDS),
            "colours": colours, "backgrounds": list(BACKGROUNDS),
            "other_templates": list(OTHER_TEMPLATES)}


def to_input(img: np.ndarray, size_px: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: shortest side to `size_px` (bicubic), centre crop,
    as open_clip's validation transform does before normalising."""
    h, w = img.shape[:2]
    scale = size_px / min(h, w)
    nh, nw = max(size_px, round(h * scale)), max(size_px, round(w * scale))
    small = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
    y0, x0 = (nh - size_px) // 2, (nw - size_px) // 2
    return small[y0:y0 + size_px, x0:x0 + size_px]


def render_corpus(spec: CorpusSpec, size_px: int, progress: Callable[[int], None] | None = None) -> Corpus:
    """Render `spec.n` images (every stream derived from `spec.seed`) at the CLIP's input size."""
    images = np.empty((spec.n, size_px, size_px, 3), np.uint8)
    out_styles: list[S.Style] = []
    out_cams: list[str] = []
    row = 0
    for fmt, split, _ in CAMERAS:
        n = camera_counts(spec.n)[fmt]
        if n == 0:
            continue
        plan = W.plan_poses(spec.seed, fmt, split, n)
        d = DOWNSCALE[fmt]
        pol = {"freihand": W.FREIHAND_CAMERA, "rhd": W.RHD_CAMERA, "stb": W.STB_CAMERA}[fmt]
        h, w = pol.height // d, pol.width // d
        scale = np.diag([1.0 / d, 1.0 / d, 1.0])
        for i in range(n):
            rng = np.random.default_rng([spec.seed, 1000 + row, 7])
            style = draw_corpus_style(rng)
            K = scale @ plan.K[i]
            layer = R.render_hand(plan.xyz[i], K, h, w, size=float(plan.size[i]), light=S.lighting_for(style, rng))
            bg = S.background(style, h, w, rng)
            skin = S.skin_rgb(style, rng, 0.05 if style.domain == "source" else 0.03)
            img = S.compose(layer, bg, skin, style.lighting, rng)
            images[row] = to_input(img, size_px)
            out_styles.append(style)
            out_cams.append(fmt)
            row += 1
            if progress:
                progress(1)
    return Corpus(images=images, styles=tuple(out_styles), cameras=tuple(out_cams))


def overlapping_seeds(corpus_seeds: Sequence[int], pose_seeds: Sequence[int]) -> list[int]:
    """Seeds shared by the CLIP corpus and pose sets (same seed = same pose streams): must be empty."""
    return sorted(set(int(s) for s in corpus_seeds) & set(int(s) for s in pose_seeds))
