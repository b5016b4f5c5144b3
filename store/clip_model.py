"""Where a synthetic CLIP's bytes live: the model folder, its card, and the resumable partial state.

A trained synthetic CLIP (`hcdg clip train --out DIR`) is a folder open_clip loads as
`local-dir:DIR`::

    DIR/open_clip_config.json        {"model_cfg": ..., "preprocess_cfg": ...} (open_clip's schema)
    DIR/open_clip_model.safetensors  the weights (safetensors: no pickle)
    DIR/hcdg_clip_card.json          the card: kind "hcdg-synthetic-clip", recipe, corpus seeds,
                                     vocabulary, steps, wall/CPU time, zero-shot accuracies,
                                     and the SHA-256 of the two files above
    DIR/MODEL_CARD.md                the card as short Markdown

The folder appears by one rename of a complete sibling temp folder (`.DIR.tmp-*`), so it is
absent or complete. While training, the state (model, optimiser, step, RNG) lives in a
sibling `.DIR.partial/` (`state.pt`, `recipe.json`), replaced atomically every
checkpoint; a re-run with the same recipe resumes from it, and it is removed once DIR is
in place. The card's `kind` and `not_openai` fields, and the weights' hash, are what the
feature-store fingerprint records (`identity_of`), so a store embedded with it can never be
taken for one embedded with OpenAI's weights.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError
from hcdg.store.atomic import atomic_write_json, atomic_write_text, dir_mode

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
CARD_FILE = "hcdg_clip_card.json"
CARD_MD = "MODEL_CARD.md"
KIND = "hcdg-synthetic-clip"
NOT_OPENAI = "trained by hcdg on synthetic rendered hands only; NOT OpenAI's CLIP weights"
STATE_FILE = "state.pt"
RECIPE_FILE = "recipe.json"


def partial_dir(out: Path) -> Path:
    """The sibling folder holding an unfinished training's state."""
    return out.parent / f".{out.name}.partial"


def read_card(folder: str | os.PathLike[str], what: str = "--clip") -> dict[str, Any]:
    """The card of a finished synthetic-CLIP folder, after checking its files and hashes.

    One-line `HcdgError` naming the folder/file when the folder is missing, is not a synthetic
    CLIP, or a file is missing or damaged (hash differs from the card's).
    """
    from hcdg.store.clip_weights import file_sha256

    folder = Path(folder)
    if not folder.is_dir():
        raise HcdgError(f"{what} {folder}: not a folder (expected the output of `hcdg clip train --out`)")
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise HcdgError(f"{what} {folder}: holds no {CARD_FILE} (expected the output of `hcdg clip train --out`)")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise HcdgError(f"{card_path}: not a readable JSON card ({exc})") from None
    if not isinstance(card, dict) or card.get("kind") != KIND:
        raise HcdgError(f"{card_path}: not a synthetic-CLIP card (expected kind {KIND!r})")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        path = folder / name
        if not path.is_file():
            raise HcdgError(f"{path}: missing (the model folder is incomplete; re-run `hcdg clip train`)")
        want = card.get("files", {}).get(name)
        if want is None or file_sha256(path) != want:
            raise HcdgError(f"{path}: damaged (its SHA-256 differs from {CARD_FILE}); re-run `hcdg clip train`")
    return card


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether `folder` holds a synthetic-CLIP card (not yet verified)."""
    return (Path(folder) / CARD_FILE).is_file()


def identity_of(card: dict[str, Any]) -> dict[str, Any]:
    """What a feature-store fingerprint records about a synthetic CLIP (beside the file hashes)."""
    return {"kind": KIND, "not_openai": NOT_OPENAI, "weights_sha256": card["files"][WEIGHTS_FILE],
            "corpus_seeds": card["corpus"]["seeds"], "recipe": card["recipe"]}


def save_state(out: Path, recipe: dict[str, Any], state: dict[str, Any]) -> None:
    """Write the training state (torch tensors/ints/lists only) atomically into the partial folder."""
    import torch

    part = partial_dir(out)
    part.mkdir(parents=True, exist_ok=True)
    atomic_write_json(part / RECIPE_FILE, recipe)
    fd, tmp = tempfile.mkstemp(prefix=".state.tmp-", dir=part)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, part / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    from hcdg.store.atomic import umask

    return umask()


def load_state(out: Path, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of an unfinished training of this `recipe`, or None (none, or another recipe:
    that one is discarded, it can never be resumed into this)."""
    import torch

    part = partial_dir(out)
    try:
        saved = json.loads((part / RECIPE_FILE).read_text())
        if saved != json.loads(json.dumps(recipe)):
            shutil.rmtree(part, ignore_errors=True)
            return None
        return torch.load(part / STATE_FILE, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError):
        return None


def write_model(out: Path, model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any],
                state_dict: dict[str, Any], card: dict[str, Any], card_md: str) -> dict[str, Any]:
    """Write the finished folder atomically (temp sibling, then rename); returns the card with
    its `files` hashes filled in. Removes the partial state afterwards."""
    from safetensors.torch import save_file

    from hcdg.store.clip_weights import file_sha256

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        atomic_write_json(tmp / CONFIG_FILE, {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
        save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(tmp / WEIGHTS_FILE),
                  metadata={"format": "pt", "hcdg": KIND})
        os.chmod(tmp / WEIGHTS_FILE, 0o666 & ~_umask())
        card = {**card, "files": {n: file_sha256(tmp / n) for n in (CONFIG_FILE, WEIGHTS_FILE)}}
        atomic_write_json(tmp / CARD_FILE, card)
        atomic_write_text(tmp / CARD_MD, card_md)
        os.chmod(tmp, dir_mode())
        if out.exists():
            out.rmdir()  # only an empty folder gets here (the stage refuses anything else)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(partial_dir(out), ignore_errors=True)
    return card


def read_style_records(root: str | os.PathLike[str], what: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(sidecar header without images, {image path relative to root: style record}) of a synthetic
    dataset folder; one-line `HcdgError` naming `what` and the folder when it holds no style records."""
    from hcdg.pipeline.synth.writers import SIDECAR

    root = Path(root)
    path = root / SIDECAR
    if not root.is_dir():
        raise HcdgError(f"{what} {root}: not a folder (expected a synthetic dataset written by `hcdg synth`)")
    if not path.is_file():
        raise HcdgError(f"{what} {root}: holds no style records ({SIDECAR}); expected a synthetic dataset "
                        "written by `hcdg synth`")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HcdgError(f"{path}: not readable JSON ({exc})") from None
    images = info.get("images") if isinstance(info, dict) else None
    if not isinstance(images, dict) or not isinstance(info.get("seed"), int):
        raise HcdgError(f"{path}: expected hcdg synth's style records (keys 'seed' and 'images')")
    records = {str(rel): rec["style"] for rel, rec in images.items() if isinstance(rec, dict) and "style" in rec}
    if not records:
        raise HcdgError(f"{path}: holds no per-image style records")
    return {k: v for k, v in info.items() if k != "images"}, records
