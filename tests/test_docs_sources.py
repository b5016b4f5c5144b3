"""Every `docs/sources.md#<anchor>` cited in the code and docs names a section that exists, and no
comment cites a file outside the repository instead."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITE = re.compile(r"docs/sources\.md#([a-z0-9-]+)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def _files() -> list[Path]:
    skip = {".venv", ".git", ".pp", "build"}
    return [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md") and p.is_file()
            and not skip & set(p.relative_to(ROOT).parts)]  # fmt: skip


def test_cited_anchors_exist():
    text = (ROOT / "docs" / "sources.md").read_text()
    anchors = {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}
    here = Path(__file__).name
    cited = {(p.relative_to(ROOT), a) for p in _files() if p.name not in (here, "sources.md")
             for a in CITE.findall(p.read_text(errors="replace"))}  # fmt: skip
    assert len(cited) > 40  # the code cites it throughout
    missing = sorted(f"{p}: #{a}" for p, a in cited if a not in anchors)
    assert not missing, missing


def test_no_citation_of_files_outside_the_repository():
    here = Path(__file__).name
    offenders = [str(p.relative_to(ROOT)) for p in _files()
                 if p.name != here and re.search(r"(PROTOCOL|CONTRACTS)\.md", p.read_text(errors="replace"))]  # fmt: skip
    assert not offenders, offenders
