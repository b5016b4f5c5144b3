"""Progress for long stages: a tqdm bar on a terminal, periodic one-line status otherwise.

When stderr is not a terminal (a log file, a batch job, `| tee`), a bar would either print
nothing (tqdm's `disable=None`) or fill the log with carriage returns. `bar()` then returns
a `StatusLines` that writes one line every `STATUS_EVERY_S` seconds (and at the start and
the end):

    train r0.6: step 1200/30000 (4.0%), loss 0.0123, 85.3 samples/s, elapsed 2m20s, ETA 56m10s

Both objects offer the tqdm methods the stages use: `update(n)`, `set_postfix(**kw)`,
`close()`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

#: Seconds between status lines off a terminal: often enough to see a job is alive,
#: rare enough that a 30,000-step run logs ~100 lines an hour. HCDG_STATUS_EVERY_S overrides.
STATUS_EVERY_S = 30.0
STATUS_ENV = "HCDG_STATUS_EVERY_S"


def _duration(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class StatusLines:
    """tqdm-like progress that prints a status line at most every `every_s` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, *, initial: int = 0, rate_unit: str | None = None,
                 rate_scale: float = 1.0, every_s: float = STATUS_EVERY_S, file: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.start_n = initial
        self.rate_unit = rate_unit or f"{unit}s"
        self.rate_scale = rate_scale
        self.every_s = every_s
        self.file = file if file is not None else sys.stderr
        self.clock = clock
        self.t0 = self.last = clock()
        self.postfix: dict[str, Any] = {}
        self.closed = False
        self._emit()

    def line(self) -> str:
        now = self.clock()
        elapsed = now - self.t0
        done = self.n - self.start_n
        parts = [f"{self.desc}: {self.unit} {self.n}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.1f}%)"
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        rate = done / elapsed if elapsed > 0 else 0.0
        if done and elapsed > 0:
            per_s = rate * self.rate_scale
            # a slow job (a shared machine) reads "12.3 s/step", not "0.0 steps/s"
            parts.append(f"{per_s:.1f} {self.rate_unit}/s" if per_s >= 0.1 else f"{1.0 / per_s:.1f} s/{self.unit}")
        parts.append(f"elapsed {_duration(elapsed)}")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def _emit(self) -> None:
        print(self.line(), file=self.file, flush=True)
        self.last = self.clock()
        self._shown = (self.n, tuple(self.postfix.items()))

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self.last >= self.every_s:
            self._emit()

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = {k: v for k, v in kw.items()}

    def close(self) -> None:
        """A last line, unless the last one already showed this state."""
        if not self.closed:
            self.closed = True
            if self._shown != (self.n, tuple(self.postfix.items())):
                self._emit()


class _Off:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _every_s() -> float:
    raw = os.environ.get(STATUS_ENV, "")
    try:
        return float(raw) if raw else STATUS_EVERY_S
    except ValueError:
        return STATUS_EVERY_S


def bar(total: int | None, desc: str, unit: str, *, enabled: bool = True, initial: int = 0,
        rate_unit: str | None = None, rate_scale: float = 1.0, file: TextIO | None = None, **tqdm_kw: Any) -> Any:  # fmt: skip
    """A tqdm bar when `file` (default stderr) is a terminal, else `StatusLines`; nothing when
    not `enabled`. `rate_unit` / `rate_scale` name and scale the status line's rate (e.g.
    "samples" at batch_size per step)."""
    if not enabled:
        return _Off()
    stream = file if file is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, **tqdm_kw)
    return StatusLines(total, desc, unit, initial=initial, rate_unit=rate_unit, rate_scale=rate_scale,
                       every_s=_every_s(), file=stream)  # fmt: skip (tqdm-only keywords are for the bar)


def _steps_done(run_dir: Any) -> int:
    """The last step a run logged in its metrics.parquet (0 when none yet)."""
    from pathlib import Path

    path = Path(run_dir) / "metrics.parquet"
    if not path.is_file():
        return 0
    try:
        import pyarrow.parquet as pq

        steps = pq.read_table(path, columns=["step"]).column("step").to_pylist()
    except Exception:  # written by another process between our checks: read it next time
        return 0
    return int(max(steps)) if steps else 0


def watch_runs(futures: dict[str, Any], run_dirs: dict[str, Any], totals: dict[str, int], *,
               enabled: bool = True, poll_s: float = 2.0, file: TextIO | None = None) -> dict[str, float]:
    """Show the progress of runs training in other processes (one bar each on a terminal,
    status lines otherwise), read from each run's metrics.parquet, until every future is done.

    Returns run name -> its own seconds (from the call to when its future finished), so runs
    trained side by side each report their own time.
    """
    t0 = time.monotonic()
    finished: dict[str, float] = {}
    for name, fut in futures.items():
        fut.add_done_callback(lambda _f, name=name: finished.setdefault(name, time.monotonic() - t0))
    bars = {name: bar(totals[name], f"train {name}", "step", enabled=enabled, file=file, position=i, leave=True,
                      dynamic_ncols=True)
            for i, name in enumerate(futures)}  # fmt: skip
    shown = {name: 0 for name in futures}
    closed: set[str] = set()
    while True:
        all_done = all(f.done() for f in futures.values())
        for name in futures:
            if name in closed:
                continue
            done = futures[name].done()  # read once: a run finishing mid-pass is shown complete next pass
            n = totals[name] if done and futures[name].exception() is None else _steps_done(run_dirs[name])
            if n > shown[name]:
                bars[name].update(n - shown[name])
                shown[name] = n
            if done:
                bars[name].close()
                closed.add(name)
        if all_done:
            break
        time.sleep(poll_s)
    return {name: finished.get(name, time.monotonic() - t0) for name in futures}
