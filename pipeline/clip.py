"""Frozen CLIP (open_clip): the model, its own preprocessing, encoders.

Paper §3.2: OpenAI's ViT-B/32, frozen; image and text features are 512-d. The
default here is open_clip's `ViT-B-32` with pretrained tag `openai`.

Where the weights' bytes live (the Hugging Face cache, a download, a local file) is
`hcdg.store.clip_weights`: it resolves `--model/--pretrained` to a `WeightSource` of local
files (and their sha256) and `load_encoder` builds a `ClipEncoder` from it. Weights
(`--pretrained`), resolved by `store.clip_weights.resolve_weights` *before* anything is
built, so a missing file fails in well under a second with one line naming the
file and where to put it (open_clip itself would retry the download for ~45 s):

* a known open_clip tag (`openai`, `laion2b_s34b_b79k`, ...): the file is looked
  up in the Hugging Face cache first; it is downloaded only when the hub is
  reachable and `HF_HUB_OFFLINE` is not set. The tag's preprocessing and
  activation are applied: OpenAI's weights were trained with QuickGELU, and
  open_clip 3.x does NOT switch `ViT-B-32` to QuickGELU for tag `openai` by
  itself (it only warns about the mismatch), so `resolve_weights` forces it
  from the tag's `quick_gelu` flag;
* `TAG=PATH`: that tag's preprocessing/activation with the weights from a local
  file (e.g. `openai=/data/open_clip_model.safetensors` copied from the hub);
* a path to a checkpoint file (`.safetensors`, `.bin`, `.pt`; loaded with
  `weights_only=True`, never an unrestricted pickle);
* `none` (or empty): random weights from `seed` (the tiny model's only mode);
* models named `local-dir:DIR` or `hf-hub:ORG/REPO` carry their own weights
  (`pretrained` is then ignored, as in open_clip).

`hcdg-tiny` (1.8 M parameters, 64x64 input, 32-token text context (Table 2
prompts need at most 14), 512-d output like ViT-B-32 so downstream code runs unchanged) is registered through open_clip's own config mechanism
(`open_clip.add_model_config` on the JSON files in `clip_configs/`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hcdg.pipeline.errors import HcdgError

#: hcdg's own open_clip model configs (package data).
CLIP_CONFIG_DIR = Path(__file__).resolve().parent / "clip_configs"
TINY_MODEL = "hcdg-tiny"
#: Paper §3.2: OpenAI ViT-B/32.
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
Precision = Literal["fp32", "fp16", "bf16"]


def register_model_configs() -> None:
    """Make hcdg's model configs (hcdg-tiny) known to open_clip; idempotent."""
    import open_clip

    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(CLIP_CONFIG_DIR)


@dataclass(frozen=True)
class WeightSource:
    """Where an encoder's weights come from, resolved to local files.

    Attributes:
        model: the open_clip model name (with `local-dir:` for directories).
        kind: "tag" | "file" | "local-dir" | "random".
        tag: the open_clip pretrained tag (kind "tag"), else None.
        path: the checkpoint file (tag/file) or directory (local-dir), else None.
        quick_gelu: force QuickGELU (from the tag's config).
        preprocess: the tag's preprocessing overrides (mean, std, interpolation, resize_mode).
        sha256: file name -> sha256 of the weight (and config) files read (empty for random weights).
    """

    model: str
    kind: Literal["tag", "file", "local-dir", "random"]
    tag: str | None = None
    path: Path | None = None
    quick_gelu: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's root-logger chatter ("initialized randomly": we record that ourselves)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class ClipEncoder:
    """A frozen open_clip model in eval mode, with its own preprocessing and tokenizer.

    Attributes:
        model: the open_clip CLIP module (eval, requires_grad False).
        preprocess: open_clip's validation transform for this model (PIL image -> (3, S, S) float32).
        tokenizer: open_clip's tokenizer for this model.
        source: the resolved `WeightSource`.
        seed: seed of the random init (meaningful when `source.kind == "random"`).
        precision: "fp32" | "fp16" | "bf16" (open_clip's precision modes).
        device: torch device the model lives on.
    """

    def __init__(self, source: WeightSource, *, seed: int = 0, precision: Precision = "fp32",
                 device: str | torch.device = "cpu") -> None:
        import open_clip

        register_model_configs()
        self.source, self.seed, self.precision = source, seed, precision
        self.device = torch.device(device)
        pretrained = str(source.path) if source.kind in ("tag", "file") else None
        # Random weights: torch.manual_seed(seed) then open_clip's own init on CPU (documented
        # in docs/store.md so anyone can rebuild them), without touching the caller's RNG.
        with torch.random.fork_rng(devices=[]), _quiet_open_clip():
            torch.manual_seed(seed)
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    source.model, pretrained=pretrained, precision=precision, device="cpu",
                    force_quick_gelu=source.quick_gelu,
                    image_mean=source.preprocess.get("mean"), image_std=source.preprocess.get("std"),
                    image_interpolation=source.preprocess.get("interpolation"),
                    image_resize_mode=source.preprocess.get("resize_mode"),
                    require_pretrained=source.kind != "random",
                    weights_only=True,
                )
            except Exception as exc:  # noqa: BLE001 - a bad weights file/config: one line naming it
                what = source.path or source.model
                first = (str(exc).splitlines() or [""])[0]
                raise HcdgError(f"cannot build CLIP {source.model} from {what}: {type(exc).__name__}: {first}") from None
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(source.model)
        self._embed_dim: int | None = None
        self.input_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.model.visual.preprocess_cfg["size"]
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def embed_dim(self) -> int:
        """D, the feature width (one dummy forward, cached)."""
        if self._embed_dim is None:
            self._embed_dim = int(self.encode_images(torch.zeros(1, 3, *self.image_size)).shape[1])
        return self._embed_dim

    def identity(self) -> dict[str, Any]:
        """What determines this encoder's outputs (goes into the store fingerprint)."""
        import open_clip

        src = self.source
        if src.kind == "random":
            weights: dict[str, Any] = {"kind": "random", "seed": self.seed}
        elif src.kind == "local-dir":
            weights = {"kind": "local-dir", "files": dict(sorted(src.sha256.items()))}
        else:
            weights = {"kind": src.kind, "tag": src.tag, "file": src.path.name, "sha256": src.sha256[src.path.name]}
        pp = dict(self.model.visual.preprocess_cfg)
        pp = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(pp.items())}
        return {
            "model": src.model if src.kind != "local-dir" else "local-dir",
            "weights": weights,
            "quick_gelu": _uses_quick_gelu(self.model),
            "preprocess": pp,
            "precision": self.precision,
            "open_clip": open_clip.__version__,
        }

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, D) float32 raw image features (not normalised)."""
        x = pixels.to(self.device, self.input_dtype, non_blocking=True)
        return self.model.encode_image(x).float()

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """P strings -> (P, D) float32 raw text features on the CPU (not normalised)."""
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
            out.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 0)


def _uses_quick_gelu(model: torch.nn.Module) -> bool:
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


class ImageRows(torch.utils.data.Dataset):
    """Row index -> (index, preprocessed image (3, S, S) float32, error message or "").

    Runs in DataLoader workers: decode (PIL) + the model's own preprocessing. An
    unreadable image yields zeros and the error text, so the caller decides
    (fail naming the file, or record the row as skipped).
    """

    def __init__(self, paths: Sequence[Path], preprocess: Any, image_size: tuple[int, int]) -> None:
        self.paths = [str(p) for p in paths]
        self.preprocess = preprocess
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, str]:
        from PIL import Image

        try:
            with Image.open(self.paths[index]) as img:
                pixels = self.preprocess(img.convert("RGB"))
            return index, pixels, ""
        except Exception as exc:  # noqa: BLE001 - any decode failure is reported per file
            return index, torch.zeros(3, *self.image_size), f"{type(exc).__name__}: {exc}".splitlines()[0]


def l2_norms(feats: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) float32 Euclidean norms, computed in float32."""
    return np.linalg.norm(np.asarray(feats, dtype=np.float32), axis=1).astype(np.float32)
