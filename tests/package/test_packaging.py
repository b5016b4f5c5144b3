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
    import ast
    from tests.helpers.paths import REPO_ROOT

    root = REPO_ROOT / "pipeline"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                if name.startswith(("hcdg.stages", "hcdg.store", "..stages", "..store", "...stages", "...store")):
                    offenders.append(f"{path.relative_to(root)}: {name}")
    assert offenders == []
