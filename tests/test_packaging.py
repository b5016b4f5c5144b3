"""The distribution installs one import package, `hcdg`; no bare pipeline/stages/store/cli."""

import subprocess
import sys


def test_only_hcdg_is_importable_from_outside_the_checkout(tmp_path):
    code = (
        "import importlib.util as u, hcdg, hcdg.pipeline, hcdg.stages, hcdg.store, hcdg.cli;"
        "print(sorted(n for n in ('pipeline', 'stages', 'store', 'cli') if u.find_spec(n)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_pipeline_never_imports_stages_or_store():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "pipeline"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(s in p.read_text() for s in ("hcdg.stages", "hcdg.store", "from ..stages", "from ..store"))
    ]
    assert offenders == []
