"""Fingerprints: what produced a store's bytes, as plain JSON, and how two differ.

A feature store records two levels (docs/store.md):

* store level (`store_fingerprint`): the encoder identity (model, weights tag or
  file hash or random seed, QuickGELU, preprocessing, compute precision, open_clip
  version), the prompt list's digest and count, and the stored dtype;
* split level (`split_fingerprint`): the dataset manifest digest (every file the
  reader reads: relative path and size), its file count and byte total, the
  reader's options and the row limit.

Adding to a store is refused when the fingerprints differ; `diff` names each
differing key as `a.b.c: store has X, this run has Y`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces; tuples as lists)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(obj: Any) -> str:
    """SHA-256 (hex) of `canonical_json(obj)`."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def manifest_fingerprint(manifest: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """{digest, n_files, total_bytes} of a reader manifest [(relative path, size bytes), ...]."""
    rows = [[str(p), int(s)] for p, s in manifest]
    return {"digest": digest(rows), "n_files": len(rows), "total_bytes": sum(s for _, s in rows)}


def store_fingerprint(encoder: Mapping[str, Any], prompts_digest: str, n_prompts: int, dtype: str) -> dict[str, Any]:
    """The store-level fingerprint (encoder identity, prompt list, stored dtype)."""
    return {
        "encoder": json.loads(canonical_json(encoder)),
        "prompts": {"digest": prompts_digest, "count": int(n_prompts)},
        "dtype": dtype,
    }


def split_fingerprint(manifest: Iterable[tuple[str, int]], *, dataset: str, split: str,
                      options: Mapping[str, Any], limit: int | None) -> dict[str, Any]:
    """The split-level fingerprint (dataset manifest, reader options, row limit)."""
    return {
        "dataset": dataset,
        "split": split,
        "options": json.loads(canonical_json(dict(options))),
        "manifest": manifest_fingerprint(manifest),
        "limit": limit,
    }


def _short(value: Any, width: int = 40) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= width else repr(value[:16]) + "..."
    text = canonical_json(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def diff(stored: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable differences, one `key: store has X, this run has Y` per differing leaf."""
    if isinstance(stored, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(stored) | set(new)):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in new:
                out.append(f"{where}: store has {_short(stored[key])}, this run has nothing")
            elif key not in stored:
                out.append(f"{where}: store has nothing, this run has {_short(new[key])}")
            else:
                out.extend(diff(stored[key], new[key], where))
        return out
    if canonical_json(stored) != canonical_json(new):
        return [f"{prefix or 'value'}: store has {_short(stored)}, this run has {_short(new)}"]
    return []
