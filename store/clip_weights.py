"""Where CLIP's weights live: the Hugging Face cache, a download, or a local file / folder.

`resolve_weights` turns `--model/--pretrained` into a `pipeline.clip.WeightSource` of local
files *before* anything is built, so a missing file fails in well under a second with one
line naming the file and where to put it (open_clip itself would retry the download for
~45 s); the sha256 of every file read goes into the source (the store fingerprint names
the weights by it). A known open_clip tag is looked up in the Hugging Face cache first and
downloaded only when `HF_HUB_OFFLINE` is unset and the hub answers a 3-second probe.
`load_encoder` resolves and builds the frozen `pipeline.clip.ClipEncoder` (the pure model
wrapper). The accepted spellings are listed in `pipeline.clip`'s docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from hcdg.pipeline.clip import (DEFAULT_MODEL, DEFAULT_PRETRAINED, ClipEncoder, Precision, WeightSource,
                                register_model_configs)
from hcdg.pipeline.errors import HcdgError

#: `--pretrained` values meaning random weights (from `seed`).
RANDOM_SPECS = ("", "none", "random")
#: Files of a weights folder that hold weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def file_sha256(path: str | os.PathLike[str], block: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe of the Hugging Face endpoint (no retries)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _cached_hf_file(repo_id: str, filenames: Sequence[str]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def _tag_files(tag_cfg: dict[str, Any]) -> tuple[str, list[str]]:
    """(hub repo id, candidate file names, safetensors first) of an open_clip tag config."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(tag_cfg.get("hf_hub", ""))
    if not filename:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    names = [filename]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return repo_id, names


def _missing_weights_error(model: str, tag: str | None, repo_id: str, names: Sequence[str]) -> HcdgError:
    why = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub is unreachable"
    where = f"--pretrained {tag}: weights for {model}/{tag}" if tag else f"--model {model}: its config and weights"
    files = " and ".join(names) if not tag else " or ".join(names)
    alternative = (f"or pass the file itself: --pretrained {tag}=/path/to/{names[0]}" if tag
                   else f"or put them in one folder and pass --model local-dir:/path/to/folder")
    return HcdgError(
        f"{where} are not available ({why}): place {files} from https://huggingface.co/{repo_id} in the "
        f"Hugging Face cache {_hf_cache_dir()} (e.g. `huggingface-cli download {repo_id} {names[0]}` on a "
        f"connected machine, then copy that cache folder here), {alternative}"
    )


def _tag_preprocess(tag_cfg: dict[str, Any]) -> dict[str, Any]:
    keys = ("mean", "std", "interpolation", "resize_mode")
    return {k: tag_cfg[k] for k in keys if k in tag_cfg}


def _resolve_scheme(model: str) -> WeightSource:
    if model.startswith("local-dir:"):
        folder = Path(model[len("local-dir:"):]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise HcdgError(f"--model {model}: expected a folder holding open_clip_config.json and a weights file")
        if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
            raise HcdgError(f"--model {model}: {folder} holds no weights file (*.safetensors, *.bin, *.pth)")
        return WeightSource(model=f"local-dir:{folder}", kind="local-dir", path=folder)
    # hf-hub:ORG/REPO -> its cached snapshot folder, then loaded as local-dir.
    repo_id = model[len("hf-hub:"):]
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    names = [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    config = _cached_hf_file(repo_id, ["open_clip_config.json"])
    weights = _cached_hf_file(repo_id, names)
    if (config is None or weights is None) and not _offline() and _hub_reachable():
        from huggingface_hub import hf_hub_download

        config = Path(hf_hub_download(repo_id, "open_clip_config.json"))
        for name in names:
            with contextlib.suppress(Exception):
                weights = Path(hf_hub_download(repo_id, name))
                break
    if config is None or weights is None or config.parent != weights.parent:
        raise _missing_weights_error(model, None, repo_id, ["open_clip_config.json", names[0]])
    return WeightSource(model=f"local-dir:{config.parent}", kind="local-dir", path=config.parent)


def _resolve(model: str, pretrained: str | None) -> WeightSource:
    import open_clip

    register_model_configs()
    if model.startswith(("local-dir:", "hf-hub:")):
        return _resolve_scheme(model)
    name = model.replace("/", "-")
    if name not in open_clip.list_models():
        known = ", ".join(m for m in open_clip.list_models() if m.startswith(("ViT-B", "RN50", "hcdg")))
        raise HcdgError(
            f"--model {model}: unknown open_clip model (e.g. {known}; all: open_clip.list_models())"
        )
    spec = (pretrained or "").strip()
    if spec.lower() in RANDOM_SPECS:
        return WeightSource(model=name, kind="random")
    tags = open_clip.list_pretrained_tags_by_model(name)
    tag, _, tag_path = spec.partition("=")
    if tag_path:
        if tag not in tags:
            raise HcdgError(f"--pretrained {spec}: {tag!r} is not a tag of {name} (known: {', '.join(tags) or 'none'})")
        path = Path(tag_path).expanduser()
        if not path.is_file():
            raise HcdgError(f"--pretrained {spec}: weights file {path} not found")
        cfg = open_clip.get_pretrained_cfg(name, tag)
        return WeightSource(name, "tag", tag, path, bool(cfg.get("quick_gelu")), _tag_preprocess(cfg))
    if spec in tags:
        cfg = open_clip.get_pretrained_cfg(name, spec)
        repo_id, names = _tag_files(cfg)
        path = _cached_hf_file(repo_id, names) if repo_id else None
        if path is None:
            if not repo_id or _offline() or not _hub_reachable():
                raise _missing_weights_error(name, spec, repo_id, names)
            from open_clip.pretrained import download_pretrained

            path = Path(download_pretrained(cfg))
        return WeightSource(name, "tag", spec, path, bool(cfg.get("quick_gelu")), _tag_preprocess(cfg))
    path = Path(spec).expanduser()
    if path.is_file():
        return WeightSource(name, "file", None, path)
    raise HcdgError(
        f"--pretrained {spec}: neither a tag of {name} (known: {', '.join(tags) or 'none'}), "
        "nor an existing weights file, nor 'none'"
    )


def resolve_weights(model: str, pretrained: str | None) -> WeightSource:
    """Resolve `--model/--pretrained` to local files, failing fast with one clear line;
    the source carries the sha256 of each file it names.

    Downloads only for a known tag whose file is not cached, when `HF_HUB_OFFLINE`
    is unset and the hub answers a 3-second probe.
    """
    source = _resolve(model, pretrained)
    if source.kind == "local-dir":
        files = sorted(p for p in source.path.iterdir()
                       if p.suffix in WEIGHT_SUFFIXES or p.name == "open_clip_config.json")  # fmt: skip
        return dataclasses.replace(source, sha256={p.name: file_sha256(p) for p in files})
    if source.path is not None:
        return dataclasses.replace(source, sha256={source.path.name: file_sha256(source.path)})
    return source


def load_encoder(model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED, *,
                 seed: int = 0, precision: Precision = "fp32", device: str | torch.device = "cpu") -> ClipEncoder:
    """Resolve the weights (failing fast) and build the frozen encoder."""
    if precision == "fp16" and torch.device(device).type == "cpu":
        raise HcdgError("--precision fp16 needs a GPU (--device cuda); use fp32 or bf16 on the CPU")
    return ClipEncoder(resolve_weights(model, pretrained), seed=seed, precision=precision, device=device)
