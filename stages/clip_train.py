"""Stage `hcdg clip train` / `hcdg clip check`: a small CLIP trained on synthetic hands.

`run(cfg)` renders the corpus (`pipeline.clip_corpus`, seeds far from every pose set),
builds an open_clip model of architecture `cfg.architecture` (`pipeline/clip_configs/`),
trains both towers with open_clip's `ClipLoss` on (image, fresh caption) batches, then
measures zero-shot accuracy on held-out images (`check_features`) and writes the model
folder (`store.clip_model`): open_clip-loadable, atomic, resumable after a kill from the
last checkpoint in `.OUT.partial/`, refusing to replace a different model.

`check(folder)` loads the folder through open_clip (`local-dir:`) and prints the
zero-shot accuracies on the card's held-out images or on a synthetic dataset's images.
See docs/synthetic_clip.md.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline import clip_corpus as CC
from hcdg.pipeline import zeroshot as Z
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.errors import HcdgError
from hcdg.store import clip_model as CM


#: Test hook (tests only): `HCDG_TEST_CLIP_KILL_AT=k` SIGKILLs the process right after the checkpoint of step k.
KILL_HOOK = "HCDG_TEST_CLIP_KILL_AT"
#: Steps between the (step, loss) points of the card's loss curve.
LOSS_EVERY = 25


@dataclass(frozen=True)
class ClipTrainConfig:
    """`hcdg clip train`. Defaults: the recipe measured in docs/synthetic_clip.md (about 4 CPU-minutes,
    hand colour and colour word zero-shot >= 4x chance)."""

    out: str = ""
    architecture: str = "hcdg-synth"  # pipeline/clip_configs/hcdg-synth.json: ViT 3x128 on 8 px patches, text 2x64
    n_images: int = 3000  # corpus images (measured: 3,000 render in ~40 s; more helps little at 600 steps)
    heldout: int = 500  # held-out images for the zero-shot check (~+-2 % standard error at 50 %)
    steps: int = 600  # optimiser steps (measured: hand colour ~4x chance only after ~500)
    batch_size: int = 128  # CLIP learns from in-batch negatives; 128 covers every hand colour x many colours
    lr: float = 1e-3  # AdamW peak learning rate (small transformers from scratch; open_clip's recipes use 5e-4..1e-3)
    weight_decay: float = 0.1  # open_clip's default for CLIP training
    warmup: int = 50  # linear warm-up steps, then cosine decay to 0 (open_clip's schedule)
    corpus_seed: int = CC.CORPUS_SEED  # far from every pose set's seed (pipeline/clip_corpus.py)
    heldout_seed: int = CC.HELDOUT_SEED
    seed: int = 0  # initial weights, batch order, captions
    exclude: tuple[str, ...] = ()  # synthetic pose-set folders whose seeds the corpus must not share
    checkpoint_every: int = 100  # steps between resumable states
    progress: bool = True

    def recipe(self) -> dict[str, Any]:
        """What determines the model's bytes (a re-run with the same recipe resumes or reuses it)."""
        d = to_dict(self)
        return {k: d[k] for k in ("architecture", "n_images", "heldout", "steps", "batch_size", "lr",
                                  "weight_decay", "warmup", "corpus_seed", "heldout_seed", "seed")}


def _validate(cfg: ClipTrainConfig) -> None:
    if not cfg.out:
        raise HcdgError("--out: the model folder is required")
    for name in ("n_images", "heldout", "steps", "batch_size", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise HcdgError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected a positive integer")
    if cfg.batch_size > cfg.n_images:
        raise HcdgError(f"--batch-size {cfg.batch_size}: larger than the corpus (--n-images {cfg.n_images})")
    for name in ("lr", "weight_decay"):
        v = getattr(cfg, name)
        if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
            raise HcdgError(f"--{name.replace('_', '-')} {v}: expected a finite positive number")
    if min(cfg.corpus_seed, cfg.heldout_seed, cfg.seed) < 0:
        raise HcdgError("--corpus-seed/--heldout-seed/--seed: expected non-negative integers")
    if cfg.corpus_seed == cfg.heldout_seed:
        raise HcdgError(f"--heldout-seed {cfg.heldout_seed}: must differ from --corpus-seed (held-out images)")
    import open_clip

    from hcdg.pipeline.clip import register_model_configs

    register_model_configs()
    if cfg.architecture not in open_clip.list_models():
        raise HcdgError(f"--architecture {cfg.architecture}: unknown open_clip model config")
    pose_seeds = []
    for root in cfg.exclude:
        header, _ = CM.read_style_records(root, "--exclude")
        pose_seeds.append(int(header["seed"]))
    clash = CC.overlapping_seeds([cfg.corpus_seed, cfg.heldout_seed], pose_seeds)
    if clash:
        raise HcdgError(f"--exclude: the pose set(s) use seed {clash[0]}, as the CLIP corpus does: they would share "
                        "hand poses; choose another --corpus-seed/--heldout-seed")


def normalise_images(images_u8: Any, mean: Any, std: Any) -> Any:
    """(B, H, W, 3) uint8 tensor -> (B, 3, H, W) float32 normalised as open_clip's transform does."""
    import torch

    x = images_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _lr_at(step: int, cfg: ClipTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * t))


def check_features(encode_images: Callable[[np.ndarray], np.ndarray], encode_texts: Callable[[list[str]], np.ndarray],
                   images_u8: np.ndarray, styles: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero-shot top-1 per Table 2 column on `images_u8` (N, S, S, 3) with recorded `styles`.

    Classes: the column's words; text feature per class = normalised mean over its Table 2
    prompts (`zeroshot.class_features`). Images whose value is not a class (the source's
    "light skin", "green screen") are left out of that column.
    """
    from hcdg.pipeline.prompts import table2_prompts

    text = encode_texts(list(table2_prompts().texts))
    feats = encode_images(images_u8)
    out: dict[str, Any] = {}
    for field in Z.FIELDS:
        rows, labels = Z.labels_of([s[field] for s in styles], field)
        acc = Z.zero_shot_top1(feats[rows], Z.class_features(text, field), labels) if len(rows) else float("nan")
        chance = 1.0 / len(Z.FIELDS[field])
        out[field] = {"top1": round(acc, 4), "chance": round(chance, 4), "x_chance": round(acc / chance, 2),
                      "images": int(len(rows)), "classes": len(Z.FIELDS[field])}
    return out


def format_check(result: dict[str, Any]) -> str:
    """One line per column: accuracy beside chance."""
    names = {"hand_colour": "hand colour", "colour": "colour word", "background": "background word"}
    return "\n".join(f"zero-shot {names[f]:<15} top-1 {r['top1'] * 100:5.1f} %  (chance {r['chance'] * 100:4.1f} %, "
                     f"{r['x_chance']:.1f}x; {r['classes']} classes, {r['images']} held-out images)"
                     for f, r in result.items())


def _encoders(model: Any, mean: Any, std: Any, tokenizer: Any) -> tuple[Callable, Callable]:
    import torch

    @torch.inference_mode()
    def images(u8: np.ndarray) -> np.ndarray:
        return np.concatenate([model.encode_image(normalise_images(torch.from_numpy(u8[i:i + 256]), mean, std)).float().numpy()
                               for i in range(0, len(u8), 256)])

    @torch.inference_mode()
    def texts(t: list[str]) -> np.ndarray:
        return np.concatenate([model.encode_text(tokenizer(t[i:i + 512])).float().numpy() for i in range(0, len(t), 512)])

    return images, texts


def _existing(out: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The card of a finished model of this recipe at `out`; refuse anything else there."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise HcdgError(f"--out {out}: is a file, expected a model folder")
    if CM.is_model_folder(out):
        card = CM.read_card(out, "--out")
        if card.get("recipe") != recipe:
            raise HcdgError(f"--out {out}: holds a different synthetic CLIP (its recipe differs); use another folder")
        return card
    if any(out.iterdir()):
        raise HcdgError(f"--out {out}: exists, is not empty and holds no synthetic CLIP; use another folder")
    return None


#: Torch threads while training: 1. Measured 2026-12-02 on the 2-core container, default recipe:
#: one thread 180 s wall / 180 CPU-s, two threads 296 s wall / 409 CPU-s (the demo's CLIP step),
#: same zero-shot accuracies: this model's small matrices pay more for thread sync than they gain.
TRAIN_THREADS = 1


def run(cfg: ClipTrainConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume, or reuse) the synthetic CLIP in `cfg.out`; returns its card (+ "reused").
    Trains on `TRAIN_THREADS` torch threads (the caller's setting is restored afterwards)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        return _run(cfg, echo)
    finally:
        torch.set_num_threads(previous)


def _run(cfg: ClipTrainConfig, echo: Callable[[str], None]) -> dict[str, Any]:
    _validate(cfg)
    out = Path(cfg.out)
    recipe = cfg.recipe()
    card = _existing(out, recipe)
    if card is not None:
        echo(f"[clip] {out}: this model is trained already (card recipe matches), reused")
        return {**card, "reused": True}
    import open_clip
    import torch
    from open_clip.loss import ClipLoss

    from hcdg.stages import progress

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    import logging

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # open_clip's "initialized randomly": training is the point here
        try:
            model = open_clip.create_model(cfg.architecture, pretrained=None, device="cpu")
        finally:
            logging.disable(previous)
    pp = dict(model.visual.preprocess_cfg)
    size, mean, std = int(pp["size"]) if not isinstance(pp["size"], (list, tuple)) else int(pp["size"][0]), pp["mean"], pp["std"]
    tokenizer = open_clip.get_tokenizer(cfg.architecture)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    start, spent, curve = 0, {"wall_s": 0.0, "cpu_s": 0.0}, []
    state = CM.load_state(out, recipe)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, spent = int(state["step"]), {"wall_s": float(state["wall_s"]), "cpu_s": float(state["cpu_s"])}
        curve = [list(map(float, x)) for x in state.get("curve", [])]
        echo(f"[clip] resuming {out} at step {start}/{cfg.steps}")

    bar = progress.bar(cfg.n_images + cfg.heldout, "clip corpus", "img", enabled=cfg.progress, rate_unit="images")
    corpus = CC.render_corpus(CC.CorpusSpec(cfg.n_images, cfg.corpus_seed), size, bar.update)
    held = CC.render_corpus(CC.CorpusSpec(cfg.heldout, cfg.heldout_seed), size, bar.update)
    bar.close()
    images = torch.from_numpy(corpus.images)
    loss_fn = ClipLoss()
    model.train()
    bar = progress.bar(cfg.steps, "clip train", "step", enabled=cfg.progress, initial=start,
                       rate_unit="images", rate_scale=cfg.batch_size)
    per_epoch = cfg.n_images // cfg.batch_size
    loss_v = float("nan")
    for step in range(start, cfg.steps):
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng([cfg.seed, 11, epoch]).permutation(cfg.n_images)
        idx = order[k * cfg.batch_size:(k + 1) * cfg.batch_size]
        rng = np.random.default_rng([cfg.seed, 13, step])
        batch = images[torch.from_numpy(idx)]
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        batch[flip] = batch[flip].flip(2)  # a mirrored hand keeps every style word
        tokens = tokenizer(CC.captions([corpus.styles[i] for i in idx], rng))
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        img_f, txt_f, scale = model(normalise_images(batch, mean, std), tokens)[:3]
        loss = loss_fn(img_f, txt_f, scale)
        if not torch.isfinite(loss):
            raise HcdgError(f"clip train: the loss became {loss.item()} at step {step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # open_clip's clamp
        loss_v = float(loss.detach())
        if step % LOSS_EVERY == 0 or step + 1 == cfg.steps:
            curve.append([step + 1, round(loss_v, 4)])
        bar.update(1)
        if cfg.progress and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss_v:.3f}", refresh=False)
        done = step + 1
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            CM.save_state(out, recipe, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "step": done, "curve": curve,
                "wall_s": spent["wall_s"] + time.perf_counter() - t_wall,
                "cpu_s": spent["cpu_s"] + time.process_time() - t_cpu})
            if os.environ.get(KILL_HOOK) == str(done):  # tests: die right after this checkpoint
                os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    model.eval()
    enc_i, enc_t = _encoders(model, mean, std, tokenizer)
    zs = check_features(enc_i, enc_t, held.images, [s.to_dict() for s in held.styles])
    card = {
        "kind": CM.KIND, "not_openai": CM.NOT_OPENAI, "recipe": recipe,
        "architecture": {"name": cfg.architecture, "parameters": sum(p.numel() for p in model.parameters())},
        "corpus": {"generator": "hcdg.pipeline.clip_corpus", "images": cfg.n_images, "heldout_images": cfg.heldout,
                   "seeds": [cfg.corpus_seed, cfg.heldout_seed], "source_share": CC.SOURCE_SHARE,
                   "table2_caption_share": CC.TABLE2_SHARE, "cameras": CC.camera_counts(cfg.n_images)},
        "vocabulary": CC.vocabulary(),
        "steps": cfg.steps, "final_loss": round(loss_v, 4), "loss_curve": curve,
        "wall_s": round(spent["wall_s"] + time.perf_counter() - t_wall, 1),
        "cpu_s": round(spent["cpu_s"] + time.process_time() - t_cpu, 1),
        "torch_threads": torch.get_num_threads(), "open_clip": open_clip.__version__,
        "zero_shot": zs,
    }
    model_cfg = open_clip.get_model_config(cfg.architecture)
    pp_out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()}
    card = CM.write_model(out, model_cfg, pp_out, model.state_dict(), card, card_markdown(card))
    echo(format_check(zs))
    echo(f"[clip] wrote {out} ({cfg.steps} steps, {card['wall_s']} s wall, {card['cpu_s']} CPU-s)")
    return {**card, "reused": False}


def card_markdown(card: dict[str, Any]) -> str:
    """The card as short Markdown (MODEL_CARD.md)."""
    c, zs = card["corpus"], card["zero_shot"]
    rows = "\n".join(f"| {f} | {r['classes']} | {r['top1'] * 100:.1f} % | {r['chance'] * 100:.1f} % | {r['x_chance']:.1f}x |"
                     for f, r in zs.items())
    voc = card["vocabulary"]
    return f"""# Synthetic CLIP ({card['architecture']['name']}, {card['architecture']['parameters']:,} parameters)

**{card['not_openai']}.** Trained by `hcdg clip train` with open_clip's ClipLoss on
{c['images']:,} rendered synthetic hand images (seed {c['seeds'][0]}) with captions composed from each
image's recorded style words ({c['table2_caption_share']:.0%} in Table 2's grammar, all 7 heads; the rest
other wordings). Held-out zero-shot images: {c['heldout_images']} at seed {c['seeds'][1]}. These seeds
are far from every pose set's; `hcdg embed --clip` refuses a dataset of the same seed.

Steps {card['steps']} (batch {card['recipe']['batch_size']}), final loss {card['final_loss']},
{card['wall_s']} s wall, {card['cpu_s']} CPU-s ({card['torch_threads']} torch threads), open_clip {card['open_clip']}.

Vocabulary: hand colours {', '.join(voc['hand_colours'])}; colour words {', '.join(voc['colours'])};
backgrounds {', '.join(voc['backgrounds'])}; heads {' / '.join(voc['heads'])}.

| zero-shot column | classes | top-1 | chance | vs chance |
|---|---|---|---|---|
{rows}
"""


@dataclass(frozen=True)
class ClipCheckConfig:
    """`hcdg clip check`."""

    folder: str
    images: str | None = None  # a synthetic dataset folder (hcdg_synth.json); None: the card's held-out images
    limit: int = 500  # at most this many of its images (first in sorted path order)
    progress: bool = True


def check(cfg: ClipCheckConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Load the folder through open_clip and measure zero-shot accuracy; returns {column: {...}}."""
    import torch
    from PIL import Image

    from hcdg.pipeline.clip import ClipEncoder
    from hcdg.store.clip_weights import resolve_weights

    card = CM.read_card(cfg.folder, "clip check")
    if cfg.limit < 1:
        raise HcdgError(f"--limit {cfg.limit}: expected a positive integer")
    enc = ClipEncoder(resolve_weights(f"local-dir:{Path(cfg.folder)}", None))
    size = enc.image_size[0]
    if cfg.images is None:
        held = CC.render_corpus(CC.CorpusSpec(card["corpus"]["heldout_images"], card["corpus"]["seeds"][1]), size)
        u8, styles = held.images, [s.to_dict() for s in held.styles]
    else:
        header, records = CM.read_style_records(cfg.images, "--images")
        clash = CC.overlapping_seeds(card["corpus"]["seeds"], [header["seed"]])
        if clash:
            echo(f"[clip] note: {cfg.images} uses seed {clash[0]}, a corpus seed of this CLIP: not held out")
        rels = sorted(records)[:cfg.limit]
        arr = []
        for rel in rels:
            try:
                with Image.open(Path(cfg.images) / rel) as img:
                    arr.append(np.asarray(img.convert("RGB")))
            except OSError as exc:
                raise HcdgError(f"{Path(cfg.images) / rel}: unreadable image ({exc})") from None
        u8 = np.stack([CC.to_input(a, size) for a in arr])
        styles = [records[r] for r in rels]
    pp = enc.model.visual.preprocess_cfg

    def images(x: np.ndarray) -> np.ndarray:
        return np.concatenate([enc.encode_images(normalise_images(torch.from_numpy(x[i:i + 256]), pp["mean"], pp["std"])).numpy()
                               for i in range(0, len(x), 256)])

    result = check_features(images, lambda t: enc.encode_texts(t).numpy(), u8, styles)
    echo(format_check(result))
    return result
