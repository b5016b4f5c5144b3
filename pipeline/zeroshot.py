"""Zero-shot maths on CLIP features: style classification by prompting, Figure 3 and Figure 4 numbers.

All features are raw (N, D) float arrays; every function L2-normalises them first
(cosine similarity, as CLIP does).

* `class_features`: one text feature per class of a Table 2 word column (hand colour:
  7 classes, colour word: 19 distinct words (Table 2 lists "yellow" twice), background
  word: 2), the normalised mean over every Table 2 prompt with that word (560, 196 or
  1,960 prompts: all heads and the other columns), the "prompt ensemble" of CLIP's paper.
* `zero_shot_top1`: top-1 accuracy of `argmax_k cos(image, class_k)`.
* `aug_nearest_fraction` (Figure 3): of the target points, the fraction whose nearest
  neighbour among {source, aug} is an aug point. The paper's claim is that the mixed
  features move the training distribution towards unseen domains: with a CLIP whose text
  means something, target features land nearer the aug points than random weights do.
* `retrieval_precision` (Figure 4): of the top-k gallery images for a query feature, the
  fraction whose recorded style matches the prompted one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from hcdg.pipeline.prompts import BACKGROUNDS, COLOURS, HAND_COLOURS, HANDS, HEADS

#: The Table 2 columns a style is classified by, and their distinct classes.
FIELDS: dict[str, tuple[str, ...]] = {
    "hand_colour": HAND_COLOURS,
    "colour": tuple(dict.fromkeys(COLOURS)),
    "background": BACKGROUNDS,
}


def normalise(feats: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float32 rows of unit length (zero rows stay zero)."""
    x = np.asarray(feats, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def table2_words() -> list[tuple[str, str, str]]:
    """(hand colour, colour, background) of each of the 3,920 Table 2 prompts, in prompt-id order."""
    return [(h, c, b) for _, h, _, c, b in itertools.product(HEADS, HAND_COLOURS, HANDS, COLOURS, BACKGROUNDS)]


def class_features(text_feats: np.ndarray, field: str) -> np.ndarray:
    """(3920, D) Table 2 text features (prompt-id order) -> (K, D) unit class features of `field`."""
    words = table2_words()
    if len(text_feats) != len(words):
        raise ValueError(f"expected the {len(words)} Table 2 text features, got {len(text_feats)}")
    col = {"hand_colour": 0, "colour": 1, "background": 2}[field]
    t = normalise(text_feats)
    out = []
    for cls in FIELDS[field]:
        rows = [i for i, w in enumerate(words) if w[col] == cls]
        out.append(t[rows].mean(0))
    return normalise(np.stack(out))


def zero_shot_predict(image_feats: np.ndarray, class_feats: np.ndarray) -> np.ndarray:
    """(N, D) images, (K, D) classes -> (N,) int predicted class (highest cosine)."""
    return np.argmax(normalise(image_feats) @ normalise(class_feats).T, axis=1)


def zero_shot_top1(image_feats: np.ndarray, class_feats: np.ndarray, labels: Sequence[int]) -> float:
    """Top-1 accuracy in [0, 1] of zero-shot prediction against `labels` (N,) class indices."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(zero_shot_predict(image_feats, class_feats) == labels))


def labels_of(values: Sequence[str], field: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices into the rows whose value is a class of `field`, their class indices)."""
    classes = {c: k for k, c in enumerate(FIELDS[field])}
    keep = [i for i, v in enumerate(values) if v in classes]
    return np.asarray(keep, dtype=np.int64), np.asarray([classes[values[i]] for i in keep], dtype=np.int64)


def aug_nearest_fraction(target: np.ndarray, source: np.ndarray, aug: np.ndarray) -> float:
    """Figure 3: fraction in [0, 1] of target rows whose nearest neighbour (cosine) among
    source + aug rows is an aug row. (T, D), (S, D), (A, D) raw features."""
    if len(target) == 0 or len(source) == 0 or len(aug) == 0:
        return float("nan")
    t = normalise(target)
    best_src = (t @ normalise(source).T).max(1)
    best_aug = (t @ normalise(aug).T).max(1)
    return float(np.mean(best_aug > best_src))


def mix(image_feats: np.ndarray, text_feat: np.ndarray, ratio: float) -> np.ndarray:
    """The paper's mixed feature (§3.3): r * image + (1 - r) * text, each unit-normalised first.
    (N, D), (D,) or (N, D) -> (N, D)."""
    return ratio * normalise(image_feats) + (1.0 - ratio) * normalise(text_feat)


def retrieval_precision(query: np.ndarray, gallery: np.ndarray, match: Sequence[bool], k: int = 8) -> float:
    """Figure 4: of the top-k gallery rows by cosine to `query` (D,), the fraction with `match` True."""
    match = np.asarray(match, dtype=bool)
    if len(gallery) == 0:
        return float("nan")
    sims = normalise(gallery) @ normalise(query.reshape(1, -1))[0]
    top = np.argsort(-sims, kind="stable")[:k]
    return float(np.mean(match[top]))


def table2_prompts_texts() -> list[str]:
    """The 3,920 Table 2 prompt strings in prompt-id order (same order as `table2_words`)."""
    return [f"{h} {c} {n} {k} {b}" for h, c, n, k, b in itertools.product(HEADS, HAND_COLOURS, HANDS, COLOURS, BACKGROUNDS)]
