"""The text prompts of the paper's Table 2, and user-supplied prompt lists.

Table 2 (paper §3.3, docs/sources.md#prompts) builds every prompt as
``"{head} {hand colour} {hand} {colour} {background}"`` from five word columns:
7 heads x 7 hand colours x 2 hands x 20 colours x 2 backgrounds = 3,920 prompts.

Order and ids (stable; documented in docs/store.md): the product is taken with
the *head* column outermost and *background* innermost, each column in the
paper's table order, so ``id = (((h * 7 + c) * 2 + n) * 20 + k) * 2 + b``.
Id 0 is ``"a cropped image of white hand with mountain room"`` and id 3919 is
``"a photo of right black right hand with flower background"``.

The colour column lists "yellow" twice (rows 8 and 14 of the table read in the
order of docs/sources.md#prompts), so 196 strings occur twice: the list keeps all 3,920
rows (the paper's count) and `distinct` maps them onto the 3,724 distinct
strings, which is what gets encoded.

A `PromptList` is identified by `digest()`: a SHA-256 over its (id, text) rows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from hcdg.pipeline.errors import HcdgError

#: Table 2 columns, in the paper's order (docs/sources.md#prompts).
HEADS: tuple[str, ...] = (
    "a cropped image of",
    "a image of",
    "a cropped photo of",
    "a picture of",
    "one",
    "a photo of",
    "a photo of right",
)
HAND_COLOURS: tuple[str, ...] = (
    "white", "dark brown", "peach", "brown", "pale yellow", "light beige", "black",
)
HANDS: tuple[str, ...] = ("hand with", "right hand with")
#: The colour column read as docs/sources.md#prompts lists it (Table 2 prints it as two
#: side-by-side sub-columns; this is their row-major reading). "yellow" twice.
COLOURS: tuple[str, ...] = (
    "mountain", "lake", "bright", "dark", "green", "purple", "white", "yellow",
    "sky blue", "black", "orange", "red", "blue", "yellow", "gray", "beige",
    "pink", "brown", "dotted", "flower",
)
BACKGROUNDS: tuple[str, ...] = ("room", "background")

#: The paper's count (§3.3): 7 x 7 x 2 x 20 x 2.
N_TABLE2 = len(HEADS) * len(HAND_COLOURS) * len(HANDS) * len(COLOURS) * len(BACKGROUNDS)


@dataclass(frozen=True)
class PromptList:
    """An ordered list of prompts with stable integer ids.

    Attributes:
        ids: (P,) the prompt ids (Table 2 ids for the paper's list or a filter of
            it; 0-based line numbers of non-empty lines for a prompt file).
        texts: (P,) the prompt strings, same order.
        source: where the list came from ("table2", "table2 filtered by /re/",
            "file:NAME"); informative only, the digest identifies the list.
    """

    ids: tuple[int, ...]
    texts: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.texts):
            raise ValueError("ids and texts differ in length")

    def __len__(self) -> int:
        return len(self.texts)

    def digest(self) -> str:
        """SHA-256 (hex) of the (id, text) rows: what identifies the list in a store."""
        payload = json.dumps(list(zip(self.ids, self.texts)), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def distinct(self) -> tuple[list[str], list[int]]:
        """(unique strings in first-seen order, row -> index into them): encode each string once."""
        first: dict[str, int] = {}
        inverse = [first.setdefault(t, len(first)) for t in self.texts]
        return list(first), inverse

    def lines(self) -> list[str]:
        """`id<TAB>text` lines, as `hcdg prompts` prints them."""
        return [f"{i}\t{t}" for i, t in zip(self.ids, self.texts)]


def table2_prompts() -> PromptList:
    """The paper's 3,920 prompts (Table 2) in the documented order, ids 0..3919."""
    texts = tuple(
        f"{head} {hand_colour} {hand} {colour} {background}"
        for head, hand_colour, hand, colour, background in itertools.product(
            HEADS, HAND_COLOURS, HANDS, COLOURS, BACKGROUNDS
        )
    )
    return PromptList(ids=tuple(range(len(texts))), texts=texts, source="table2")


def load_prompt_file(path: str | Path) -> PromptList:
    """A user prompt list: one prompt per line (UTF-8); blank lines and `#` comments skipped.

    Ids are the 0-based positions among the kept lines.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HcdgError(f"{path}: prompt file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HcdgError(f"{path}: cannot read prompt file as UTF-8 text ({exc})") from None
    texts = tuple(
        s for s in (line.strip() for line in raw.splitlines()) if s and not s.startswith("#")
    )
    if not texts:
        raise HcdgError(f"{path}: prompt file holds no prompts (expected one prompt per line)")
    return PromptList(ids=tuple(range(len(texts))), texts=texts, source=f"file:{path.name}")


def filter_prompts(prompts: PromptList, pattern: str) -> PromptList:
    """The rows whose text matches the regular expression `pattern` (re.search), ids kept."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise HcdgError(f"--prompt-filter: not a valid regular expression {pattern!r} ({exc})") from None
    keep = [(i, t) for i, t in zip(prompts.ids, prompts.texts) if rx.search(t)]
    if not keep:
        raise HcdgError(f"--prompt-filter {pattern!r}: matches none of the {len(prompts)} prompts")
    ids, texts = zip(*keep)
    return PromptList(ids=tuple(ids), texts=tuple(texts), source=f"{prompts.source} filtered by /{pattern}/")


def select_prompts(prompt_file: str | Path | None = None, pattern: str | None = None) -> PromptList:
    """Table 2 (or `prompt_file`), optionally filtered by `pattern`."""
    plist = load_prompt_file(prompt_file) if prompt_file else table2_prompts()
    return filter_prompts(plist, pattern) if pattern else plist
