"""Paths the tests compute once: the repository root (the `hcdg` package folder)."""

from pathlib import Path

#: The repository root: tests/helpers/paths.py -> tests/helpers -> tests -> root.
REPO_ROOT = Path(__file__).resolve().parents[2]
