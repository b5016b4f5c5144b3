"""Run every benchmark (`benchmarks/bench_*.py`) with its default arguments, one after another.

    python -m benchmarks.run_all [--list] [--only step,synth] [-- extra args for every script]

(`make bench` runs this.) Each script runs in its own process, so one's threads, memory or
crash do not touch the next; its Markdown output is printed as it comes. The exit status is
non-zero when any script failed, and the failures are named at the end. The numbers go into
docs/benchmarks.md by hand, with the machine and command (see its sections).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    """name (file stem without 'bench_') -> script, sorted by name."""
    return {p.stem[len("bench_"):]: p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    ap.add_argument("--only", default="", help="comma list of names to run (default: all)")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments passed to every script")
    args = ap.parse_args(argv)
    scripts = discover()
    if args.list:
        print("\n".join(scripts))
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(scripts)
    unknown = [n for n in names if n not in scripts]
    if unknown:
        print(f"--only: unknown benchmark {unknown[0]!r} (have {', '.join(scripts)})", file=sys.stderr)
        return 2
    extra = [a for a in args.extra if a != "--"]
    failed = []
    for name in names:
        print(f"\n## {name}: {scripts[name].name} {' '.join(extra)}".rstrip(), flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(scripts[name]), *extra])
        print(f"({name}: exit {rc}, {time.perf_counter() - t0:.1f} s)", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
