"""CLIP feature mixing at batch time (paper §3.3, Table 4a): f = r*f_img + (1-r)*f_txt.

The training stage loads the image-feature table of its split (N,D) and the text table
(P,D) once onto the device; each step draws a prompt id per sample and gathers the
mixed feature by index (`gather_mixed`), so no CLIP model and no zarr read runs per batch.

Normalisation: the paper does not say whether f_img and f_txt are L2-normalised before
mixing, and the authors' code shows none (docs/sources.md#method). Raw ViT-B/32 image and text
features have different norms, so an unnormalised r = 0.6 mix is not a 60/40 mix of
directions; we L2-normalise each by default (`normalize=False` reproduces the code).

Modes (Table 4; `TrainConfig.mode`, `TrainConfig.effective_ratio`): baseline = no Branch2;
ie = image feature only (r = 1); te = text feature only (r = 0); ie+te = the mix at the
chosen r. (Table 6's normal augmentation is not a mixing mode: it replaces the CLIP
positive by an augmented view.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from hcdg.pipeline.errors import HcdgError

def check_ratio(ratio: float) -> None:
    """Refuse a ratio outside [0, 1] with one line naming the option."""
    if not 0.0 <= ratio <= 1.0:
        raise HcdgError(f"--ratio: expected a value in [0, 1], got {ratio!r}")


def mix_features(img_feats: torch.Tensor, txt_feats: torch.Tensor, ratio: float, normalize: bool = True) -> torch.Tensor:
    """r * f_img + (1 - r) * f_txt, each (B,D); L2-normalised first when `normalize`.

    r = 1 returns the (normalised) image feature exactly, r = 0 the text feature.
    """
    check_ratio(ratio)
    if img_feats.shape != txt_feats.shape:
        raise HcdgError(f"mix_features: image {tuple(img_feats.shape)} and text {tuple(txt_feats.shape)} differ")
    if normalize:
        img_feats = F.normalize(img_feats, dim=-1)
        txt_feats = F.normalize(txt_feats, dim=-1)
    if ratio == 1.0:
        return img_feats.clone()
    if ratio == 0.0:
        return txt_feats.clone()
    return ratio * img_feats + (1.0 - ratio) * txt_feats


def draw_prompt_ids(
    generator: torch.Generator,
    batch: int,
    n_prompts: int | None = None,
    subset: Sequence[int] | torch.Tensor | None = None,
) -> torch.Tensor:
    """(batch,) long prompt ids, uniform over range(n_prompts) or over `subset`.

    Drawn from `generator` on its device, so a seeded generator (or a restored
    generator state) gives the same ids. Give exactly one of `n_prompts`, `subset`.
    """
    if (n_prompts is None) == (subset is None):
        raise HcdgError("draw_prompt_ids: give exactly one of n_prompts or subset")
    if batch < 0:
        raise HcdgError(f"draw_prompt_ids: batch must be >= 0, got {batch}")
    dev = generator.device
    if subset is not None:
        pool = torch.as_tensor(subset, dtype=torch.long).to(dev)
        if pool.ndim != 1 or pool.numel() == 0:
            raise HcdgError("--prompts: the prompt subset is empty")
        pick = torch.randint(pool.numel(), (batch,), generator=generator, device=dev)
        return pool[pick]
    if n_prompts < 1:
        raise HcdgError(f"draw_prompt_ids: the store has no prompts (n_prompts={n_prompts})")
    return torch.randint(n_prompts, (batch,), generator=generator, device=dev)


def gather_mixed(
    img_table: torch.Tensor | None,
    txt_table: torch.Tensor | None,
    sample_idx: torch.Tensor,
    prompt_idx: torch.Tensor | None,
    ratio: float,
    normalize: bool = True,
) -> torch.Tensor:
    """f_clip (B,D) float32 for a batch: rows `sample_idx` of img_table (N,D) mixed with rows
    `prompt_idx` of txt_table (P,D), on the tables' device.

    The tables may be float16 (the store's dtype): only the gathered rows are converted to
    float32, so a float16 table gives exactly what its float32 conversion would.

    At r = 1 the text table may be None (mode ie); at r = 0 the image table may be
    None (mode te).
    """
    check_ratio(ratio)
    if ratio == 1.0 and txt_table is None:
        if img_table is None:
            raise HcdgError("gather_mixed: no image table for ratio 1")
        f = img_table[sample_idx.to(img_table.device)].float()
        return F.normalize(f, dim=-1) if normalize else f.clone()
    if txt_table is None or prompt_idx is None:
        raise HcdgError(f"gather_mixed: ratio {ratio} needs the text table and prompt ids")
    t = txt_table[prompt_idx.to(txt_table.device)].float()
    if ratio == 0.0 and img_table is None:
        return F.normalize(t, dim=-1) if normalize else t.clone()
    if img_table is None:
        raise HcdgError(f"gather_mixed: ratio {ratio} needs the image table")
    f = img_table[sample_idx.to(img_table.device)].float()
    return mix_features(f, t, ratio, normalize)
