"""Which evaluation a results file holds, and the file name that keeps it apart from the others.

An evaluation's identity is (run, weights, target, split, crops + box file, sample limit,
protocol options: the protocols computed and the heatmap decoder). Its files are named
from the parts that differ from the *reference* evaluation, the one `hcdg report` reads
(the finished model on every sample of the target's test split, gt crops, the default
decoder)::

    eval/rhd.parquet                                  the reference evaluation
    eval/rhd--step-00000500--limit-4.parquet          a checkpoint, first 4 samples
    eval/rhd--seed-boxes.parquet                      the authors' boxes instead of gt crops
    eval/stb--split-B1Counting--decoder-argmax.parquet

So a quick check never lands on the reference results. Each file pair has a record
``eval/<stem>.json`` holding its `identity`; writing over a file of the same name but a
different identity (another protocol subset or box file) is refused unless forced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError

#: Separator between the target and the variant parts of a results file stem.
SEP = "--"
#: Weights name of the finished model (model.safetensors).
FINAL = "final"
#: Sample limit of a complete evaluation, as stored in the ``limit`` column.
ALL_SAMPLES = "all"
#: Identity columns every results / summary row carries (docs/results.md).
IDENTITY_COLUMNS = ("checkpoint", "checkpoint_step", "limit", "crops", "decoder")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class EvalIdentity:
    """What one evaluation is (see the module docstring).

    Attributes:
        checkpoint: "final" (model.safetensors) or the checkpoint folder name "step-00000500".
        target, split: the dataset and split evaluated.
        default_split: `split` is the target's test split (the reference).
        crops: "gt" or "seed-boxes"; boxes: the box file's name (None for gt crops).
        limit: the first N samples only; None = every sample.
        protocols: the protocols computed, sorted.
        decoder, default_decoder: the heatmap decoder used, and the default one.
        scale, rot: the test-time crop scale and rotation (1 and 0: none).
    """

    checkpoint: str
    target: str
    split: str
    default_split: bool
    crops: str
    boxes: str | None
    limit: int | None
    protocols: tuple[str, ...]
    decoder: str
    default_decoder: str
    scale: float = 1.0  # test-time crop scale (eval --scale; the authors' test option)
    rot: float = 0.0  # test-time crop rotation, degrees (eval --rot)

    def parts(self) -> list[str]:
        """The variant parts of the file stem (empty for the reference evaluation)."""
        out = []
        if self.checkpoint != FINAL:
            out.append(self.checkpoint)
        if not self.default_split:
            out.append(f"split-{self.split}")
        if self.crops != "gt":
            out.append(self.crops)
        if self.decoder != self.default_decoder:
            out.append(f"decoder-{self.decoder}")
        if self.scale != 1.0:
            out.append(f"scale-{self.scale:g}")
        if self.rot != 0.0:
            out.append(f"rot-{self.rot:g}")
        if self.limit is not None:
            out.append(f"limit-{self.limit}")
        return [_SAFE.sub("_", p) for p in out]

    @property
    def stem(self) -> str:
        """``<target>`` for the reference evaluation, else ``<target>--<part>--<part>...``."""
        return SEP.join([self.target, *self.parts()])

    @property
    def is_reference(self) -> bool:
        """The finished model, every sample, the default decoder (what `hcdg report` compares)."""
        return (self.checkpoint == FINAL and self.limit is None and self.decoder == self.default_decoder
                and self.scale == 1.0 and self.rot == 0.0)

    def columns(self, checkpoint_step: int | None) -> dict[str, Any]:
        """The identity columns of every results row (`IDENTITY_COLUMNS`)."""
        return {
            "checkpoint": self.checkpoint, "checkpoint_step": checkpoint_step,
            "limit": ALL_SAMPLES if self.limit is None else str(self.limit),
            "crops": self.crops, "decoder": self.decoder,
        }  # fmt: skip

    def describe(self) -> str:
        """One line for messages: 'rhd/evaluation, step-00000500, first 4 samples, gt crops'."""
        weights = "final model" if self.checkpoint == FINAL else self.checkpoint
        n = "all samples" if self.limit is None else f"first {self.limit} samples"
        crops = self.crops + (f" ({self.boxes})" if self.boxes else "")
        return f"{self.target}/{self.split}, {weights}, {n}, {crops} crops, {self.decoder}, {'+'.join(self.protocols)}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["protocols"] = list(self.protocols)
        return d


def checkpoint_name(step: int | None, final: bool) -> str:
    """"final" for the finished model, else the checkpoint folder name of `step`."""
    if final:
        return FINAL
    return f"step-{int(step or 0):08d}"


def stem_of(path: str | Path) -> str:
    """``eval/rhd--limit-4.parquet`` -> ``rhd--limit-4``."""
    return Path(path).name.removesuffix(".parquet")


def target_of(stem: str) -> str:
    """The target of a results file stem."""
    return stem.split(SEP, 1)[0]


def is_reference_stem(stem: str) -> bool:
    """True for a stem with no variant part that changes the weights, the samples, the decoder or the
    test-time crop scale / rotation
    (``rhd``, ``rhd--seed-boxes``, ``stb--split-B1Random``); False for checkpoints and limits."""
    parts = stem.split(SEP)[1:]
    return not any(p.startswith(("step-", "limit-", "decoder-", "scale-", "rot-")) for p in parts)


def is_reference_file(path: str | Path) -> bool:
    """`is_reference_stem`, and for files written before identities were kept (no variant
    part in the name), their record's ``eval_config`` names no checkpoint and no limit."""
    from hcdg.store.atomic import read_json_object
    from hcdg.store.checkpoints import MODEL_WEIGHTS

    stem = stem_of(path)
    if not is_reference_stem(stem):
        return False
    rec = record_path(Path(path).parent.parent, stem)
    if not rec.is_file():
        return True
    try:
        record = read_json_object(rec, "an hcdg eval record")
    except HcdgError:
        return True
    if "identity" in record:
        return True
    cfg = record.get("eval_config") or {}
    return cfg.get("limit") is None and cfg.get("checkpoint") in (None, FINAL) and str(
        record.get("weights", "")).endswith(MODEL_WEIGHTS)


def record_path(run_dir: str | Path, stem: str) -> Path:
    """``RUN_DIR/eval/<stem>.json``."""
    return Path(run_dir) / "eval" / f"{stem}.json"


def identity_of_record(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The identity a record was written with, comparable with `EvalIdentity.to_json`; records
    from before identities were kept are reconstructed from their ``eval_config``."""
    if isinstance(record.get("identity"), Mapping):
        return dict(record["identity"])
    cfg = record.get("eval_config")
    if not isinstance(cfg, Mapping):
        return None
    return {"limit": cfg.get("limit"), "crops": cfg.get("crops", "gt"),
            "protocols": sorted(cfg.get("protocols") or []), "decoder": cfg.get("decoder")}  # fmt: skip


def check_overwrite(run_dir: str | Path, identity: EvalIdentity, force: bool) -> None:
    """Refuse (HcdgError) to replace results of the same file name but another identity.

    Re-running the same evaluation replaces its files (it recomputes the same thing);
    `force` replaces whatever is there.
    """
    from hcdg.store.atomic import read_json_object

    results = Path(run_dir) / "eval" / f"{identity.stem}.parquet"
    if force or not results.is_file():
        return
    rec_path = record_path(run_dir, identity.stem)
    old = None
    if rec_path.is_file():
        try:
            old = identity_of_record(read_json_object(rec_path, "an hcdg eval record"))
        except HcdgError:
            old = None
    new = identity.to_json()
    differs = old is None or any(old.get(k) != new.get(k) for k in old if k in new)
    if differs:
        what = "an evaluation hcdg cannot identify" if old is None else _diff(old, new)
        raise HcdgError(
            f"{results}: holds {what}; refusing to replace it "
            "(pass --force to replace it, or evaluate into another run folder)"
        )


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = [k for k in old if k in new and old[k] != new[k]]
    return "a different evaluation (" + ", ".join(f"{k} {old[k]!r}, now {new[k]!r}" for k in keys) + ")"
