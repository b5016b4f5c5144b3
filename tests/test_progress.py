"""Progress off a terminal: periodic one-line status instead of a bar."""

from __future__ import annotations

import io

from hcdg.stages import progress


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_status_lines_report_step_loss_rate_and_eta_every_interval():
    clock, out = _Clock(), io.StringIO()
    bar = progress.StatusLines(1000, "train r0.6", "step", initial=100, rate_unit="samples", rate_scale=8,
                               every_s=30.0, file=out, clock=clock)  # fmt: skip
    for _ in range(50):  # 50 steps in 10 s: no line yet (interval 30 s)
        clock.t += 0.2
        bar.update(1)
    assert out.getvalue().count("\n") == 1  # only the start line
    bar.set_postfix(loss="0.0123")
    for _ in range(100):  # 100 more steps, 20 s more: the 30 s mark is passed once
        clock.t += 0.2
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    # 150 steps in 30 s = 5 steps/s = 40 samples/s; 750 steps left -> 150 s
    assert lines[1] == ("train r0.6: step 250/1000 (25.0%), loss 0.0123, 40.0 samples/s, elapsed 30s, ETA 2m30s")
    clock.t += 1.0
    bar.update(1)
    bar.close()
    bar.close()  # idempotent
    assert len(out.getvalue().splitlines()) == 3 and "step 251/1000" in out.getvalue().splitlines()[-1]


def test_bar_is_status_lines_off_a_terminal_and_silent_when_disabled(monkeypatch):
    out = io.StringIO()  # not a tty
    monkeypatch.setenv(progress.STATUS_ENV, "0")
    b = progress.bar(10, "embed stb/test", "img", file=out, dynamic_ncols=True)
    assert isinstance(b, progress.StatusLines) and b.every_s == 0.0
    b.update(3)
    b.close()
    assert "embed stb/test: img 3/10 (30.0%)" in out.getvalue()
    quiet = progress.bar(10, "x", "img", enabled=False, file=out)
    quiet.update(5)
    quiet.close()
    assert out.getvalue().count("\n") == 2  # start, the update (interval 0); close repeats nothing


def test_bar_is_tqdm_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    from tqdm import tqdm

    b = progress.bar(10, "x", "step", file=Tty())
    assert isinstance(b, tqdm)
    b.close()


def test_close_does_not_repeat_the_last_line():
    clock, out = _Clock(), io.StringIO()
    bar = progress.StatusLines(2, "x", "step", every_s=0.0, file=out, clock=clock)
    clock.t += 1
    bar.update(2)
    bar.close()
    assert out.getvalue().count("step 2/2") == 1


def test_run_all_lists_every_benchmark_and_reports_failures(tmp_path, monkeypatch, capfd):
    from benchmarks import run_all

    assert {"step", "synth", "embed", "loader"} <= set(run_all.discover())
    bad = tmp_path / "bench_bad.py"
    bad.write_text("raise SystemExit(3)\n")
    good = tmp_path / "bench_good.py"
    good.write_text("print('| ok |')\n")
    monkeypatch.setattr(run_all, "discover", lambda: {"bad": bad, "good": good})
    assert run_all.main([]) == 1
    out = capfd.readouterr()
    assert "| ok |" in out.out and "failed: bad" in out.err
    assert run_all.main(["--only", "good"]) == 0


def test_watch_runs_shows_each_run_and_times_each_on_its_own(tmp_path):
    """Two 'runs' in threads write metrics.parquet; the watcher prints status lines per run
    (not a terminal) and each run's own time (the short one is not charged the long one's)."""
    import io
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from hcdg.stages import progress as pr

    def fake_run(folder, steps, pause):
        folder.mkdir()
        for s in range(1, steps + 1):
            _time.sleep(pause)
            pd.DataFrame({"step": list(range(1, s + 1))}).to_parquet(folder / "metrics.parquet")
        return s

    buf = io.StringIO()
    dirs = {"quick": tmp_path / "quick", "slow": tmp_path / "slow"}
    with ThreadPoolExecutor(2) as pool:
        futs = {"quick": pool.submit(fake_run, dirs["quick"], 2, 0.05), "slow": pool.submit(fake_run, dirs["slow"], 4, 0.3)}
        own = pr.watch_runs(futs, dirs, {"quick": 2, "slow": 4}, poll_s=0.05, file=buf)
    assert own["quick"] < 0.8 < own["slow"]
    lines = buf.getvalue().splitlines()
    assert any(ln.startswith("train quick: step 2/2 (100.0%)") for ln in lines), lines
    assert any(ln.startswith("train slow: step 4/4 (100.0%)") for ln in lines)
