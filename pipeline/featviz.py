"""What Figures 3 and 4 of the paper compute from CLIP features (pure numpy/torch + sklearn).

* Figure 3 (paper §4.2): a t-SNE of "aug" = ``0.5 * (f_img(x) + f_txt(t))`` of source
  images with a prompt each, next to the plain image features of each dataset
  ("frei", "stb", "rhd"). `aug_features` + `subsample` + `tsne_2d`.
* Figure 4 (paper §4.2): mix one source image's feature with a prompt's text feature
  (weight r on the image), then rank all *other* source images by cosine similarity
  to the mix. `rank_by_cosine`.

Normalisation: the paper prints the plain sum ``0.5 * (f_CI + f_CT)``; raw ViT-B/32 image
and text features have different norms, so, like training (`mixing.mix_features`), each
is L2-normalised first by default (``normalize=False`` gives the printed raw sum).
"""

from __future__ import annotations

import numpy as np
import torch

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.mixing import mix_features


def subsample(n_rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`min(n, n_rows)` distinct row indices drawn without replacement, sorted."""
    if n < 1:
        raise HcdgError(f"--n: expected >= 1, got {n}")
    k = min(int(n), int(n_rows))
    return np.sort(rng.choice(n_rows, size=k, replace=False))


def aug_features(
    img_feats: torch.Tensor, txt_feats: torch.Tensor, rows: np.ndarray, rng: np.random.Generator,
    ratio: float = 0.5, normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Figure 3's "aug" points: image rows `rows` each mixed with a uniformly drawn prompt.

    Args:
        img_feats: (N, D) source image features; txt_feats: (P, D) text features.
        rows: (k,) image rows to use. rng: draws one prompt id per row.
        ratio: weight of the image feature (Figure 3 uses 0.5).
    Returns:
        ((k, D) float32 mixed features, (k,) int prompt ids).
    """
    if img_feats.shape[1] != txt_feats.shape[1]:
        raise HcdgError(f"image features are {img_feats.shape[1]}-d but text features {txt_feats.shape[1]}-d")
    pids = rng.integers(0, txt_feats.shape[0], size=len(rows))
    img = img_feats[torch.as_tensor(rows, dtype=torch.long)].float()
    txt = txt_feats[torch.as_tensor(pids, dtype=torch.long)].float()
    return mix_features(img, txt, ratio, normalize=normalize).cpu().numpy(), pids


def tsne_2d(points: np.ndarray, seed: int = 0, perplexity: float = 30.0, normalize: bool = True) -> np.ndarray:
    """(M, D) -> (M, 2) t-SNE embedding (scikit-learn, PCA init, seeded).

    Rows are L2-normalised first by default (CLIP features are compared by cosine).
    The perplexity is capped at (M - 1) / 3 so small sets work.
    """
    from sklearn.manifold import TSNE

    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 4:
        raise HcdgError(f"t-SNE needs at least 4 points, got {x.shape[0] if x.ndim == 2 else x.shape}")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perp = float(min(perplexity, (x.shape[0] - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=int(seed))
    return tsne.fit_transform(x)


def rank_by_cosine(
    query: torch.Tensor | np.ndarray, feats: torch.Tensor | np.ndarray, exclude: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `feats` ordered by cosine similarity to `query`, most similar first.

    Args:
        query: (D,) feature. feats: (N, D) features. exclude: a row left out (the query image).
    Returns:
        (order (N or N-1,) int row indices, sims (same length,) float cosine similarities).
        Ties keep the lower row first (stable sort).
    """
    q = torch.as_tensor(np.asarray(query) if not isinstance(query, torch.Tensor) else query).double().reshape(-1)
    f = torch.as_tensor(np.asarray(feats) if not isinstance(feats, torch.Tensor) else feats).double()
    if f.ndim != 2 or f.shape[1] != q.shape[0]:
        raise HcdgError(f"rank_by_cosine: query is {q.shape[0]}-d, features {tuple(f.shape)}")
    sims = torch.nn.functional.cosine_similarity(f, q[None, :], dim=1).cpu().numpy()
    rows = np.arange(len(sims))
    if exclude is not None:
        keep = rows != int(exclude)
        rows, sims = rows[keep], sims[keep]
    order = np.argsort(-sims, kind="stable")
    return rows[order], sims[order]
