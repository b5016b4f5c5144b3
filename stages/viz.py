"""`hcdg viz`: the paper's Figures 3 and 4, drawn from a feature store (no CLIP run).

* `tsne` (Figure 3, paper §4.2): t-SNE of "aug" = 0.5 * (f_img + f_txt) of source images,
  one random prompt each, beside the plain image features of every embedded split
  ("frei", "stb", "rhd"), each subsampled with a seed. Writes FILE.png and the 2D points
  as FILE.csv (group, split, sample id, prompt id, x, y).
* `retrieve` (Figure 4, paper §4.2): one source image's feature mixed with a prompt's text
  feature (weight r on the image), all *other* source images ranked by cosine similarity
  to the mix, the top K drawn in a grid beside the query.

Features come from `hcdg.store.features` (loaded once); images from the dataset reader.
A store built with random CLIP weights is announced with a one-line warning: its
figures show the machinery, not CLIP's semantics.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.config import ConfigError, check_int_range
from hcdg.pipeline.errors import HcdgError

#: Figure 3's group names for each dataset.
SHORT_NAMES = {"freihand": "frei", "stb": "stb", "rhd": "rhd"}
#: Figure 3 colours (aug first, then the datasets).
COLOURS = {"aug": "tab:orange", "frei": "tab:blue", "stb": "tab:green", "rhd": "tab:red"}


@dataclass(frozen=True)
class TsneConfig:
    """`hcdg viz tsne`.

    Attributes:
        store: the feature store (`hcdg embed`).
        out: the PNG to write (a CSV of the points is written beside it).
        n: points per group (aug and each split), subsampled with `seed`; 500 keeps
            t-SNE under a minute on 2 cores with 4 groups.
        seed: subsampling, prompt draw and t-SNE seed.
        source: split key of the source ("aug" and "frei"); None = the store's first
            `freihand/*` split (paper §4.2: FreiHAND is the source).
        perplexity: t-SNE perplexity (scikit-learn's default 30; capped for small sets).
        normalize: L2-normalise features before mixing and before t-SNE (see `pipeline.featviz`).
    """

    store: str = ""
    out: str = ""
    n: int = 500
    seed: int = 0
    source: str | None = None
    perplexity: float = 30.0
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n: expected >= 1, got {self.n!r}")
        if not self.perplexity > 0:
            raise ConfigError(f"--perplexity: expected > 0, got {self.perplexity!r}")
        # scikit-learn's TSNE takes a random_state in [0, 2**32 - 1]
        check_int_range(self.seed, "--seed", 0, 2**32 - 1, "scikit-learn's t-SNE seed")


@dataclass(frozen=True)
class RetrieveConfig:
    """`hcdg viz retrieve`.

    Attributes:
        store: the feature store; root: the source dataset's root (for the images).
        dataset, split: the source split (paper Fig. 4: FreiHAND training images).
        index: the query image's row in that split (reader order).
        prompt: a prompt text; must be one of the store's prompts (`hcdg prompts --store`).
        ratio: weight r of the image feature in the mix (paper §3.3: 0.6 for STB, 0.9 for RHD).
        top: how many ranked images to draw.
        out: the PNG to write.
        normalize: L2-normalise image and text features before mixing (as training does).
    """

    store: str = ""
    root: str = ""
    out: str = ""
    index: int = 0
    prompt: str = ""
    ratio: float = 0.6
    top: int = 8
    dataset: str = "freihand"
    split: str = "training"
    normalize: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ConfigError(f"--ratio: expected a value in [0, 1], got {self.ratio!r}")
        if self.top < 1:
            raise ConfigError(f"--top: expected >= 1, got {self.top!r}")
        if self.index < 0:
            raise ConfigError(f"--index: expected >= 0, got {self.index!r}")


def _store_splits(store: str) -> tuple[list[str], dict[str, Any]]:
    """(complete split keys, store info); one warning line when its weights are random."""
    from hcdg.store import features

    if not store:
        raise HcdgError("--store: the feature store path is required")
    info = features.store_info(store)  # prints the random-weights warning once per store
    for s in info["splits"]:  # a damaged split is refused, never silently left out of a figure
        problems = s.get("integrity", {}).get("problems") or []
        if problems:
            raise HcdgError(f"--store {store}: split {s['key']} is damaged: {problems[0]}"
                            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                            + "; rerun the `hcdg embed` command that wrote it")
    keys = [s["key"] for s in info["splits"] if s["complete"]]
    return keys, info


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, out: str) -> Path:
    from hcdg.store.atomic import atomic_path

    if not out:
        raise HcdgError("--out: the PNG file to write is required")
    path = Path(out)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _label(key: str, keys: list[str]) -> str:
    ds = key.split("/")[0]
    short = SHORT_NAMES.get(ds, ds)
    same = [k for k in keys if k.split("/")[0] == ds]
    return short if len(same) == 1 else f"{short}:{key.split('/')[1]}"


def _weights_note(info: dict[str, Any]) -> str:
    enc = info["fingerprint"]["encoder"]
    model = enc.get("model", "?")
    if info.get("random_weights"):
        return f"{model}, RANDOM weights: features carry no meaning"
    if "synthetic_clip" in enc:
        return "synthetic CLIP trained by hcdg on rendered hands (not OpenAI's weights)"
    w = enc.get("weights", {})
    return f"{model} ({w.get('tag') or w.get('kind', '')})"


def tsne(cfg: TsneConfig) -> dict[str, Any]:
    """Figure 3. Returns {"png", "csv", "groups": {label: n_points}}."""
    import pandas as pd

    from hcdg.pipeline import featviz
    from hcdg.store import features
    from hcdg.store.atomic import atomic_path

    keys, info = _store_splits(cfg.store)
    if not keys:
        raise HcdgError(f"--store {cfg.store}: holds no complete image split (run `hcdg embed` first)")
    source = cfg.source or next((k for k in keys if k.startswith("freihand/")), None)
    if source is None:
        raise HcdgError(f"--store {cfg.store}: no freihand/* split to draw 'aug' from (splits: {', '.join(keys)}); "
                        "name one with --source")
    if source not in keys:
        raise HcdgError(f"--source {source}: not a complete split of {cfg.store} (splits: {', '.join(keys)})")
    rng = np.random.default_rng(cfg.seed)
    prompts, txt = features.load_text(cfg.store, "cpu")
    points, rows_meta = [], []
    for key in [source] + [k for k in keys if k != source]:
        ids, img = features.load_split(cfg.store, key, "cpu")
        rows = featviz.subsample(len(ids), cfg.n, rng)
        label = _label(key, keys)
        feats = img[rows].float().numpy()
        if cfg.normalize:
            feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        points.append(feats)
        rows_meta += [(label, key, ids[r], -1) for r in rows]
        if key == source:
            arows = featviz.subsample(len(ids), cfg.n, rng)
            mixed, pids = featviz.aug_features(img, txt, arows, rng, 0.5, cfg.normalize)
            points.append(mixed)
            rows_meta += [("aug", key, ids[r], int(p)) for r, p in zip(arows, pids)]
    xy = featviz.tsne_2d(np.concatenate(points), seed=cfg.seed, perplexity=cfg.perplexity, normalize=cfg.normalize)
    frame = pd.DataFrame(rows_meta, columns=["group", "split", "sample_id", "prompt_id"])
    frame["x"], frame["y"] = xy[:, 0], xy[:, 1]

    fig = _figure(7, 6)
    ax = fig.add_subplot(1, 1, 1)
    order = ["aug"] + [g for g in dict.fromkeys(frame["group"]) if g != "aug"]
    for g in order:
        sel = frame[frame["group"] == g]
        ax.scatter(sel["x"], sel["y"], s=8, alpha=0.7, label=f"{g} ({len(sel)})",
                   color=COLOURS.get(g.split(":")[0]))
    ax.legend(loc="best", markerscale=2, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of CLIP features (Figure 3): aug = 0.5*(f_img + f_txt) of "
                 f"{source}\n{_weights_note(info)}", fontsize=9)
    fig.tight_layout()
    png = _save_png(fig, cfg.out)
    csv = png.with_suffix(".csv")
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    return {"png": png, "csv": csv, "groups": frame["group"].value_counts(sort=False).to_dict(),
            "random_weights": bool(info.get("random_weights"))}


def find_prompt(prompts: list[str], text: str, store: str) -> int:
    """Row of `text` in the store's prompt list; a clear error (with near matches) otherwise."""
    if text in prompts:
        return prompts.index(text)
    near = difflib.get_close_matches(text, prompts, n=3, cutoff=0.6)
    hint = f"; did you mean {' / '.join(repr(p) for p in near)}?" if near else ""
    raise HcdgError(
        f"--prompt {text!r}: not one of the {len(prompts)} prompts in {store} "
        f"(list them with `hcdg prompts --store {store}`){hint}"
    )


def retrieve(cfg: RetrieveConfig) -> dict[str, Any]:
    """Figure 4. Returns {"png", "query_id", "ranked": [(sample_id, cosine), ...]}."""
    from hcdg.pipeline import featviz
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.mixing import mix_features
    from hcdg.store import features

    key = f"{cfg.dataset}/{cfg.split}"
    keys, info = _store_splits(cfg.store)
    if key not in keys:
        raise HcdgError(f"--store {cfg.store}: no complete split {key!r} (splits: {', '.join(keys) or 'none'})")
    prompts, txt = features.load_text(cfg.store, "cpu")
    pid = find_prompt(prompts, cfg.prompt, cfg.store)
    ids, img = features.load_split(cfg.store, key, "cpu")
    if cfg.index >= len(ids):
        raise HcdgError(f"--index {cfg.index}: the split {key} has {len(ids)} images (0..{len(ids) - 1})")
    if not cfg.root:
        raise HcdgError("--root: the source dataset's root folder is required (to draw the images)")
    reader = open_dataset(cfg.dataset, Path(cfg.root), cfg.split)
    from hcdg.store import fingerprint as fpr

    recorded = next(s for s in info["splits"] if s["key"] == key)["fingerprint"]["manifest"]
    here = fpr.manifest_fingerprint(reader.manifest())
    if here["digest"] != recorded["digest"]:  # same ids, other images: the figure would show the wrong ones
        raise HcdgError(f"--root {cfg.root}: not the dataset {key} was embedded from (its files differ from the "
                        f"store's manifest: {recorded['n_files']} files then, {here['n_files']} here)")
    index_of = {reader.sample_id(i): i for i in range(len(reader))}
    missing = [s for s in ids if s not in index_of]
    if missing:
        raise HcdgError(f"--root {cfg.root}: {len(missing)} of the store's {key} ids are not in this dataset "
                        f"(first {missing[0]!r}); the store was built from other data")
    query = mix_features(img[cfg.index : cfg.index + 1].float(), txt[pid : pid + 1].float(), cfg.ratio,
                         normalize=cfg.normalize)[0]
    order, sims = featviz.rank_by_cosine(query, img.float(), exclude=cfg.index)
    k = min(cfg.top, len(order))
    ranked = [(ids[int(r)], float(s)) for r, s in zip(order[:k], sims[:k])]

    cols = min(k, 4)
    grid_rows = int(np.ceil(k / cols))
    fig = _figure(2.4 * (cols + 1.3), 2.6 * max(grid_rows, 1) + 0.5)
    gs = fig.add_gridspec(max(grid_rows, 1), cols + 1, width_ratios=[1.3] + [1] * cols)
    axq = fig.add_subplot(gs[:, 0])
    axq.imshow(reader[index_of[ids[cfg.index]]].image)
    axq.set_title("query " + ids[cfg.index] + f"\nr = {cfg.ratio:g}\n" + "\n".join(textwrap.wrap(cfg.prompt, 26)),
                  fontsize=8)
    axq.axis("off")
    for j, (sid, sim) in enumerate(ranked):
        ax = fig.add_subplot(gs[j // cols, 1 + j % cols])
        ax.imshow(reader[index_of[sid]].image)
        ax.set_title(f"#{j + 1} {sid}\ncos {sim:.3f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"Figure 4: {key} images nearest to r*f_img + (1-r)*f_txt -- {_weights_note(info)}", fontsize=9)
    fig.tight_layout()
    png = _save_png(fig, cfg.out)
    return {"png": png, "query_id": ids[cfg.index], "prompt_id": pid, "ranked": ranked,
            "random_weights": bool(info.get("random_weights"))}


def ranking_lines(result: dict[str, Any]) -> list[str]:
    """The retrieval as text lines: rank, sample id, cosine similarity."""
    return [f"{j:3d}  {sid}  {sim:.4f}" for j, (sid, sim) in enumerate(result["ranked"], 1)]
