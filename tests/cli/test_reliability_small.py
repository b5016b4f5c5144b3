"""Reliability catalogue, the smaller items: notes where a check is partial, names where a file is bad."""

import shutil

from click.testing import CliRunner

from hcdg.cli import main

FLAGS = ["--width-mult", "0.25", "--input-size", "64", "--batch-size", "4", "--workers", "0", "--no-progress",
         "--mode", "baseline", "--val-fraction", "0.2"]


def test_report_names_a_truncated_run_json_and_escapes_html_in_run_names(synth_freihand, tmp_path):
    run = tmp_path / "<script>alert(1)</script>"
    res = CliRunner().invoke(main, ["train", "--root", str(synth_freihand), "--out", str(run), "--steps", "1", *FLAGS])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    text = (bad / "run.json").read_text()
    (bad / "run.json").write_text(text[: len(text) // 2])
    res = CliRunner().invoke(main, ["report", str(bad), "--out", str(tmp_path / "rep2")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{bad / 'run.json'}: not valid JSON" in res.output.strip().splitlines()[-1]


def test_resume_into_an_empty_folder_says_it_starts_fresh(synth_freihand, tmp_path):
    res = CliRunner().invoke(main, ["train", "--root", str(synth_freihand), "--out",
                                                    str(tmp_path / "r"), "--steps", "1", "--resume", *FLAGS])
    assert res.exit_code == 0 and "holds no run yet; starting it from step 0" in res.stderr


def test_data_check_says_how_many_images_it_decoded(synth_freihand):
    res = CliRunner().invoke(main, ["data", "check", "--dataset", "freihand", "--root", str(synth_freihand)])
    assert res.exit_code == 0 and "only the first and last of 48: `--decode all`" in res.output


def test_store_under_a_file_is_one_line(synth_freihand, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store",
                                    str(tmp_path / "afile" / "x.h5"), "--model", "hcdg-tiny", "--workers", "0"])
    assert res.exit_code == 1 and f"{tmp_path / 'afile'} is a file, not a folder" in res.output
    assert res.output.count("\n") == 1


def test_store_info_says_the_manifest_misses_same_size_edits(synth_freihand_store):
    res = CliRunner().invoke(main, ["store", "info", str(synth_freihand_store)])
    assert res.exit_code == 0 and "edited in place at the same size is not noticed" in res.output
