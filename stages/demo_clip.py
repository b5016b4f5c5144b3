"""The demo's CLIP: which one, trained or reused, and Figures 3-4 as numbers (used by `stages.demo`).

* `choose(clip, out)`: `--clip synthetic` (default) trains the synthetic CLIP into `<out>/clip`
  (`hcdg clip train`, reused on every re-run); a folder reuses a trained one; `random` keeps
  the random-weight `hcdg-tiny` path.
* `figure_numbers(...)`: Figure 3, the fraction of target features (STB + RHD images) whose
  nearest neighbour among {source, aug} is an aug point (aug = 0.5 f_img + 0.5 f_txt of source
  images with random Table 2 prompts, as drawn in the figure); Figure 4, over `N_QUERIES`
  (source image, Table 2 prompt) queries mixed at the run's r, the precision among the top 8
  retrieved target images of the prompted hand colour and of the prompted colour word, beside
  the precision random retrieval would give. Both are computed for the demo's CLIP and for the
  same architecture with random weights (the control; `control_store`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline import zeroshot as Z
from hcdg.pipeline.errors import HcdgError

#: (source image, prompt) queries of the Figure 4 precision (enough for a +-0.03 standard error).
N_QUERIES = 200
#: Retrieved images per query (Figure 4 shows the top 8).
TOP_K = 8
#: Figure 3's mixing ratio of the aug points (`hcdg viz tsne`, featviz.aug_features).
FIG3_RATIO = 0.5


def choose(clip: str, out: Path) -> tuple[str, dict[str, Any]]:
    """(kind: "synthetic" | "folder" | "random", embed arguments {"clip": ...} or {"model", "pretrained"})."""
    if clip == "random":
        return "random", {"model": "hcdg-tiny", "pretrained": "none"}
    if clip == "synthetic":
        return "synthetic", {"clip": str(out / "clip")}
    folder = Path(clip)
    if not folder.is_dir():
        raise HcdgError(f"--clip {clip}: expected 'synthetic', 'random' or a folder from `hcdg clip train`")
    return "folder", {"clip": str(folder.resolve())}


def _styles(dataset: str, root: Path, ids: list[str]) -> list[dict[str, Any]]:
    """Recorded style of each store row (sample id) of a synthetic split."""
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.store.clip_model import read_style_records

    _, records = read_style_records(root, "--root")
    reader = open_dataset(dataset, root)
    by_id = {reader.sample_id(i): Path(reader.image_path(i)).resolve().relative_to(root.resolve()).as_posix()
             for i in range(len(reader))}
    return [records[by_id[s]] for s in ids]


def figure_numbers(store: Path, roots: dict[str, Path], ratio: float, seed: int) -> dict[str, Any]:
    """Figure 3 and Figure 4 numbers of one store (freihand/training source, stb/test + rhd/evaluation targets)."""
    import torch

    from hcdg.pipeline import featviz
    from hcdg.store import features

    prompts, txt = features.load_text(store, "cpu")
    words = {p: w for p, w in zip(Z.table2_prompts_texts(), Z.table2_words())}
    if not all(p in words for p in prompts):
        raise HcdgError(f"{store}: Figure 4 precision needs Table 2 prompts")
    _, src = features.load_split(store, "freihand/training", "cpu")
    targets, styles = [], []
    for key, ds in (("stb/test", "stb"), ("rhd/evaluation", "rhd")):
        ids, feats = features.load_split(store, key, "cpu")
        targets.append(feats.float().numpy())
        styles += _styles(ds, roots[ds], ids)
    tgt = np.concatenate(targets)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(src))
    aug, _ = featviz.aug_features(src, txt, rows, rng, FIG3_RATIO, True)
    fig3 = Z.aug_nearest_fraction(tgt, src.float().numpy(), aug)
    hand = np.array([s["hand_colour"] for s in styles])
    colour = np.array([s["colour"] for s in styles])
    prec = {"hand_colour": [], "colour": [], "both": []}
    base = {"hand_colour": [], "colour": [], "both": []}
    src_np, txt_np = src.float().numpy(), txt.float().numpy()
    for q in range(N_QUERIES):
        i, p = int(rng.integers(len(src_np))), int(rng.integers(len(prompts)))
        h, c, _ = words[prompts[p]]
        query = Z.mix(src_np[i:i + 1], txt_np[p], ratio)[0]
        for name, match in (("hand_colour", hand == h), ("colour", colour == c), ("both", (hand == h) & (colour == c))):
            prec[name].append(Z.retrieval_precision(query, tgt, match, TOP_K))
            base[name].append(float(match.mean()))
    return {
        "fig3_aug_nearest": round(fig3, 4), "fig3_targets": int(len(tgt)), "fig3_source": int(len(src)),
        "fig4": {k: {"precision": round(float(np.mean(v)), 4), "random_retrieval": round(float(np.mean(base[k])), 4),
                     "sem": round(float(np.std(v) / np.sqrt(len(v))), 4)} for k, v in prec.items()},
        "fig4_queries": N_QUERIES, "ratio": ratio, "top_k": TOP_K,
    }


def section(which: str, card: dict[str, Any] | None, numbers: dict[str, Any], control: dict[str, Any] | None) -> str:
    """Markdown: which CLIP ("synthetic" with its card, "random", or an open_clip model's name), and
    Figures 3-4 as numbers (with the random-weight control when given)."""
    if card is not None:
        zs = card["zero_shot"]
        head = (f"**CLIP: a synthetic CLIP trained by hcdg on rendered hands ({card['architecture']['name']}, "
                f"{card['corpus']['images']:,} images, {card['steps']} steps; NOT OpenAI's weights).** Zero-shot on "
                f"held-out synthetic images: hand colour {zs['hand_colour']['top1']:.0%} (chance "
                f"{zs['hand_colour']['chance']:.0%}), colour word {zs['colour']['top1']:.0%} (chance "
                f"{zs['colour']['chance']:.0%}), background word {zs['background']['top1']:.0%} (chance 50%).")
    elif which == "random":
        head = "**CLIP: hcdg-tiny with RANDOM weights (`--clip random`): its features carry no meaning.**"
    else:
        head = f"**CLIP: {which} (open_clip, `--model/--pretrained`).**"

    def row(name: str, n: dict[str, Any]) -> str:
        f4 = n["fig4"]
        return (f"| {name} | {n['fig3_aug_nearest']:.0%} | {f4['hand_colour']['precision']:.0%} "
                f"({f4['hand_colour']['random_retrieval']:.0%}) | {f4['colour']['precision']:.0%} "
                f"({f4['colour']['random_retrieval']:.0%}) | {f4['both']['precision']:.0%} "
                f"({f4['both']['random_retrieval']:.0%}) |")

    rows = [row("this demo's CLIP" if which != "random" else "random weights", numbers)]
    if control is not None:
        rows.append(row("same architecture, random weights (control)", control))
    return "\n".join([
        "## Which CLIP, and Figures 3-4 as numbers", "", head, "",
        f"Figure 3: share of the {numbers['fig3_targets']} target features (STB + RHD) whose nearest neighbour "
        f"among the source features and the aug features (0.5 image + 0.5 random Table 2 prompt) is an aug "
        "point. Figure 4: over "
        f"{numbers['fig4_queries']} queries (a source image mixed with a random Table 2 prompt at r = "
        f"{numbers['ratio']}), the precision of the prompted style among the top {numbers['top_k']} retrieved "
        "target images; in brackets what random retrieval gives.", "",
        "| CLIP | Fig 3: targets nearest an aug point | Fig 4: hand colour | Fig 4: colour word | Fig 4: both |",
        "|---|---|---|---|---|", *rows, "",
    ])


def control_store(out: Path, step: Callable[..., Any], embed_split: Callable[[str, Path, dict[str, Any]], Any],
                  architecture: str) -> Path:
    """Embed the three splits again with `architecture` at random weights (the control) into `<out>/store-random.zarr`."""
    store = out / "store-random.zarr"
    for fmt in ("freihand", "stb", "rhd"):
        step(f"embed-control/{fmt}", f"embedding {fmt} with {architecture} at random weights (control)",
             lambda fmt=fmt: embed_split(fmt, store, {"model": architecture, "pretrained": "none"}))
    return store
