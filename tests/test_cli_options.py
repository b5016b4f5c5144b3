"""Each option declared once: help, choices and defaults come from the config dataclasses, and the
command line resolves exactly the config a Python caller gets."""

import dataclasses
import re
import typing

import click
import pytest
from click.testing import CliRunner

from hcdg import cli
from hcdg.pipeline.config import ROLES, ConfigError, default_of, field_choices, literal_choices, show_default
from hcdg.stages.train_config import PRESETS, SECTIONS, TrainConfig

#: Options that set no config field (output format, the TOML file, the progress switch of a
#: stage whose `run` takes it as an argument, the prompt listing's own filters).
NOT_FIELDS = {"--help", "--version", "--json", "--config", "--progress", "--store", "--prompt-file", "--prompt-filter"}


def _commands(group=cli.main, path=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _help_of(cmd, opt):
    ctx = click.Context(cmd, info_name="hcdg")
    rec = opt.get_help_record(ctx)
    return " ".join(rec[1].split()) if rec else ""


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=" ".join)
def test_help_states_each_default_once_read_from_the_dataclass(path):
    cmd = dict(_commands())[path]
    res = CliRunner().invoke(cli.main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    for opt in cmd.params:
        if not isinstance(opt, click.Option):
            continue
        text = _help_of(cmd, opt)
        unset = type(opt.default).__name__ == "Sentinel"  # click's "no default given"
        assert unset or opt.default in (None, False), (path, opt.name, opt.default)
        if not isinstance(opt, cli.FieldOption) or opt.field_ref is None:
            assert opt.opts[0] in NOT_FIELDS or opt.opts[0].startswith("--"), opt.opts
            assert "default" not in text.lower(), (path, opt.name, text)  # nothing to restate
            continue
        assert opt.default is None or unset, (path, opt.name)  # the dataclass default applies, never click's
        try:
            value = opt.field_default()
        except KeyError:
            value = None  # a required field
        stated = re.findall(r"default", text, flags=re.IGNORECASE)
        if value in (None, "") or opt.required:
            assert not stated, (path, opt.name, text)  # prose says what "not given" means instead
        else:
            assert len(stated) == 1 and f"Default: {show_default(value)}." in text, (path, opt.name, text)


def test_choices_are_the_literal_values():
    for path, cmd in _commands():
        for opt in cmd.params:
            if not isinstance(opt, cli.FieldOption) or opt.field_ref is None:
                continue
            cls, name = cli._resolve_ref(opt.field_ref[0]), opt.field_ref[1]
            lit = field_choices(cls, name)
            if lit is not None and isinstance(opt.type, click.Choice):
                assert tuple(opt.type.choices) == lit, (path, name)


def test_every_train_field_is_classified_and_documented():
    for f in dataclasses.fields(TrainConfig):
        m = f.metadata
        assert m.get("role") in ROLES, f.name
        assert isinstance(m.get("batch"), bool), f.name
        assert m.get("section") in SECTIONS, f.name
        assert m.get("help", "").strip().endswith((".", ")")), f.name
        assert not re.search(r"default", m["help"], flags=re.IGNORECASE), f.name  # the CLI adds the default
    from hcdg.stages import train_shared
    from hcdg.stages.train_config import RUNTIME_KEYS

    assert "out" in RUNTIME_KEYS and "lr" not in RUNTIME_KEYS and "seed" in train_shared.BATCH_FIELDS
    assert "ratio" not in train_shared.BATCH_FIELDS


def test_every_literal_field_is_checked_by_one_generic_rule():
    hints = typing.get_type_hints(TrainConfig)
    literal = [f.name for f in dataclasses.fields(TrainConfig) if literal_choices(hints[f.name])]
    assert len(literal) >= 15
    for name in literal:
        with pytest.raises(ConfigError, match=f"^--{name.replace('_', '-')}: expected one of .*got 'nope'"):
            TrainConfig(**{name: "nope"})


def _cli_config(monkeypatch, args):
    from hcdg.stages import train as stage

    seen = []

    def fake_run(cfg):
        seen.append(cfg)
        return {"total_steps": 1}

    monkeypatch.setattr(stage, "run", fake_run)
    res = CliRunner().invoke(cli.main, ["train", *args])
    assert seen, res.output
    return seen[0]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_cli_and_python_resolve_identical_configs(preset, tmp_path, monkeypatch):
    toml = tmp_path / "base.toml"
    toml.write_text('batch_size = 16\nlr_drops = [10, 20]\n[color]\nbrightness = 0.3\n')
    args = ["--preset", preset, "--root", "r", "--out", "o"]
    assert _cli_config(monkeypatch, args) == TrainConfig.resolve(preset=preset, root="r", out="o")
    with_file = _cli_config(monkeypatch, [*args, "--config", str(toml), "--ratio", "0.9", "--no-augment",
                                          "--lr-drops", "5,7"])
    py = TrainConfig.resolve(preset=preset, toml=toml, root="r", out="o", ratio=0.9, augment=False, lr_drops=(5, 7))
    assert with_file == py and py.batch_size == 16 and py.color.brightness == 0.3 and py.lr_drops == (5, 7)
    assert py.preset == preset and all(getattr(py, k) == v or isinstance(v, dict)
                                       for k, v in PRESETS[preset].items() if k not in ("batch_size", "ratio"))


def test_help_is_grouped_in_sections():
    out = CliRunner().invoke(cli.main, ["train", "--help"]).output
    heads = [ln[: -len(" options:")].lower() for ln in out.splitlines() if ln.endswith(" options:")]
    assert heads == [s.lower() for s in SECTIONS] + ["other"]  # other: --help
    sweep = CliRunner().invoke(cli.main, ["sweep", "--help"]).output
    assert "Sweep axis" in " ".join(sweep.split()) and not re.search(r"^\s+--resume", sweep, flags=re.M)
    assert re.search(r"--ratio FLOAT", out) and re.search(r"--ratio TEXT", sweep)  # a comma list in sweeps


def test_default_of_and_show_default():
    assert default_of(TrainConfig, "geom") == TrainConfig().geom
    assert show_default(()) == "none" and show_default(True) == "on" and show_default(30000) == "30,000"


def test_print_config_is_toml_that_config_reads_back(tmp_path, monkeypatch):
    res = CliRunner().invoke(cli.main, ["train", "--print-config", "--preset", "authors", "--root", "r", "--out", "o",
                                        "--ratio", "0.9", "--lr-drops", "5,7", "--prompt-filter", 'one "x"'])
    assert res.exit_code == 0, res.output
    printed = tmp_path / "printed.toml"
    printed.write_text(res.output)
    want = TrainConfig.resolve(preset="authors", root="r", out="o", ratio=0.9, lr_drops=(5, 7), prompt_filter='one "x"')
    assert TrainConfig.resolve(toml=printed) == want
    assert _cli_config(monkeypatch, ["--config", str(printed)]) == want  # the preset is in the file
    assert _cli_config(monkeypatch, ["--config", str(printed), "--batch-size", "4"]).batch_size == 4  # flags win
