"""`hcdg clip train/check` and `hcdg embed --clip`: the synthetic CLIP learns, loads through
open_clip, is kept apart from the pose sets, and bad input fails in one line writing nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import clip_corpus as CC
from hcdg.pipeline.errors import HcdgError
from hcdg.stages import clip_train as T
from hcdg.store import clip_model as CM

#: A CI-sized recipe (the default is in docs/synthetic_clip.md); ~20 CPU-s.
SMALL = T.ClipTrainConfig(out="", n_images=480, heldout=240, steps=80, batch_size=64, warmup=10,
                          checkpoint_every=40, progress=False)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip") / "model"
    card = T.run(replace(SMALL, out=str(out)), echo=lambda s: None)
    return out, card


def _untrained_check(tmp_path) -> dict:
    """Zero-shot of the same architecture at its random initialisation (the baseline to beat)."""
    import open_clip
    import torch

    from hcdg.pipeline.clip import register_model_configs

    register_model_configs()
    torch.manual_seed(SMALL.seed)
    model = open_clip.create_model(SMALL.architecture).eval()
    pp = model.visual.preprocess_cfg
    held = CC.render_corpus(CC.CorpusSpec(SMALL.heldout, SMALL.heldout_seed), 64)
    tok = open_clip.get_tokenizer(SMALL.architecture)
    with torch.inference_mode():
        def images(u8):
            return model.encode_image(T.normalise_images(torch.from_numpy(u8), pp["mean"], pp["std"])).numpy()

        def texts(t):
            return model.encode_text(tok(t)).numpy()

        return T.check_features(images, texts, held.images, [s.to_dict() for s in held.styles])


def test_small_clip_learns_style_words_above_chance_and_untrained(small_clip, tmp_path):
    out, card = small_clip
    zs = card["zero_shot"]
    before = _untrained_check(tmp_path)
    # colour word (19 classes) and background word (2) are learnt within 80 small steps
    assert zs["colour"]["top1"] >= 2.5 * zs["colour"]["chance"], zs
    assert zs["colour"]["top1"] >= before["colour"]["top1"] + 0.15, (zs, before)
    assert zs["background"]["top1"] >= 0.65, zs
    assert zs["hand_colour"]["top1"] > before["hand_colour"]["top1"], (zs, before)
    assert card["kind"] == CM.KIND and "NOT OpenAI" in card["not_openai"]
    assert card["corpus"]["seeds"] == [CC.CORPUS_SEED, CC.HELDOUT_SEED]
    assert (out / CM.CARD_MD).read_text().startswith("# Synthetic CLIP")


def test_weights_load_through_open_clip_and_check_reproduces_the_card(small_clip):
    import open_clip
    import torch
    from safetensors.torch import load_file

    out, card = small_clip
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    saved = load_file(str(out / CM.WEIGHTS_FILE))
    assert set(saved) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert model.visual.preprocess_cfg["size"] in (64, (64, 64), [64, 64])
    res = CliRunner().invoke(main, ["clip", "check", str(out)])
    assert res.exit_code == 0, res.output
    assert "zero-shot colour word" in res.output and "chance" in res.output
    got = T.check(T.ClipCheckConfig(folder=str(out)), echo=lambda s: None)
    for field in ("hand_colour", "colour", "background"):
        assert abs(got[field]["top1"] - card["zero_shot"][field]["top1"]) <= 0.02, (field, got, card["zero_shot"])


def test_rerun_reuses_and_a_different_model_is_refused(small_clip):
    out, card = small_clip
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = T.run(replace(SMALL, out=str(out)), echo=lambda s: None)
    assert again["reused"] and again["files"] == card["files"]
    with pytest.raises(HcdgError, match="holds a different synthetic CLIP"):
        T.run(replace(SMALL, out=str(out), steps=81), echo=lambda s: None)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.slow  # two CLIP trainings in subprocesses, one killed: ~39 s on a shared core
def test_kill_then_rerun_resumes_to_the_same_weights(tmp_path):
    """SIGKILL right after a checkpoint; the re-run resumes there and ends bit-identical."""
    from safetensors.torch import load_file

    tiny = dict(n_images=96, heldout=48, steps=12, batch_size=32, warmup=2, checkpoint_every=6)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in tiny.items()]
    cmd = [sys.executable, "-m", "hcdg", "clip", "train", "--no-progress", *args]
    env = {**os.environ, T.KILL_HOOK: "6"}
    killed = subprocess.run([*cmd, "--out", str(tmp_path / "a")], env=env, capture_output=True, text=True)
    assert killed.returncode != 0
    assert not (tmp_path / "a").exists() and (tmp_path / ".a.partial" / CM.STATE_FILE).is_file()
    resumed = subprocess.run([*cmd, "--out", str(tmp_path / "a")], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and not (tmp_path / ".a.partial").exists()
    straight = subprocess.run([*cmd, "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    a, b = load_file(str(tmp_path / "a" / CM.WEIGHTS_FILE)), load_file(str(tmp_path / "b" / CM.WEIGHTS_FILE))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_corpus_sharing_a_pose_set_seed_is_refused(synth_freihand, tmp_path):
    res = CliRunner().invoke(main, ["clip", "train", "--out", str(tmp_path / "m"), "--exclude", str(synth_freihand),
                                    "--corpus-seed", "0", "--no-progress"])
    assert res.exit_code == 1
    assert "seed 0" in res.output and "share" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists() and not (tmp_path / ".m.partial").exists()


def test_bad_inputs_one_line_nothing_written(small_clip, tmp_path):
    out, _ = small_clip
    runner = CliRunner()
    plain = tmp_path / "plain"
    plain.mkdir()
    # a folder without style records
    res = runner.invoke(main, ["clip", "train", "--out", str(tmp_path / "m"), "--exclude", str(plain)])
    assert res.exit_code == 1 and "no style records" in res.output, res.output
    res = runner.invoke(main, ["clip", "check", str(out), "--images", str(plain)])
    assert res.exit_code == 1 and "no style records" in res.output, res.output
    assert not (tmp_path / "m").exists()
    # missing and damaged weights
    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / CM.WEIGHTS_FILE).unlink()
    res = runner.invoke(main, ["clip", "check", str(missing)])
    assert res.exit_code == 1 and "missing" in res.output and CM.WEIGHTS_FILE in res.output, res.output
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    raw = bytearray((damaged / CM.WEIGHTS_FILE).read_bytes())
    raw[-100] ^= 0xFF
    (damaged / CM.WEIGHTS_FILE).write_bytes(bytes(raw))
    res = runner.invoke(main, ["clip", "check", str(damaged)])
    assert res.exit_code == 1 and "damaged" in res.output, res.output
    for folder, word in ((missing, "missing"), (damaged, "damaged"), (plain, "no hcdg_clip_card.json")):
        store = tmp_path / f"s-{folder.name}.zarr"
        res = runner.invoke(main, ["embed", "--dataset", "freihand", "--root", str(out.parent), "--store", str(store),
                                   "--clip", str(folder), "--device", "cpu", "--no-progress"])
        assert res.exit_code == 1 and word in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1 and not store.exists()
    # bad recipe numbers
    res = runner.invoke(main, ["clip", "train", "--out", str(tmp_path / "m"), "--lr", "nan"])
    assert res.exit_code == 1 and "--lr" in res.output and not (tmp_path / "m").exists()


def test_embed_with_clip_records_it_and_refuses_its_corpus_seed(small_clip, synth_freihand, tmp_path):
    from hcdg.stages import synth
    from hcdg.store.features import read_meta

    out, card = small_clip
    store = tmp_path / "f.zarr"
    res = CliRunner().invoke(main, ["embed", "--dataset", "freihand", "--root", str(synth_freihand), "--store",
                                    str(store), "--clip", str(out), "--device", "cpu", "--workers", "0",
                                    "--limit", "8", "--prompt-filter", "^a photo of black", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "RANDOM" not in res.output
    enc = read_meta(store)["fingerprint"]["encoder"]
    assert enc["synthetic_clip"]["kind"] == CM.KIND and "NOT OpenAI" in enc["synthetic_clip"]["not_openai"]
    assert enc["synthetic_clip"]["weights_sha256"] == card["files"][CM.WEIGHTS_FILE]
    assert enc["weights"]["files"][CM.WEIGHTS_FILE] == card["files"][CM.WEIGHTS_FILE]
    info = CliRunner().invoke(main, ["store", "info", str(store)])
    assert info.exit_code == 0 and "synthetic CLIP" in info.output and "NOT OpenAI" in info.output, info.output
    leaked = tmp_path / "leak"
    synth.run(synth.SynthConfig(format="rhd", out=str(leaked), n=2, n_other=1, seed=CC.CORPUS_SEED), progress=False)
    store2 = tmp_path / "g.zarr"
    res = CliRunner().invoke(main, ["embed", "--dataset", "rhd", "--root", str(leaked), "--store", str(store2),
                                    "--clip", str(out), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 1 and "has seen these hand poses" in res.output, res.output
    assert not store2.exists()


def test_captions_use_every_table2_head_and_other_wordings():
    from hcdg.pipeline.prompts import HEADS

    rng = np.random.default_rng(0)
    style = CC.draw_corpus_style(np.random.default_rng(3))
    while style.domain != "target":
        style = CC.draw_corpus_style(rng)
    caps = [CC.caption(style, rng) for _ in range(400)]
    assert all(any(c.startswith(h + " ") for c in caps) for h in HEADS)
    assert sum(c.startswith(HEADS) for c in caps) < 300  # other wordings too
    assert all(style.hand_colour in c or style.colour in c for c in caps)
    assert CC.overlapping_seeds([CC.CORPUS_SEED, CC.HELDOUT_SEED], [0, 1, 2]) == []
    json.dumps(CC.vocabulary())


def test_figure_numbers_maths():
    from hcdg.pipeline import zeroshot as Z

    src = np.array([[1.0, 0, 0], [0.9, 0.1, 0]])
    aug = np.array([[0, 1.0, 0]])
    tgt = np.array([[0.1, 1.0, 0], [1.0, 0.05, 0], [0.2, 0.9, 0.1]])
    assert Z.aug_nearest_fraction(tgt, src, aug) == pytest.approx(2 / 3)
    gallery = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    match = [True, False, False, True]
    assert Z.retrieval_precision(np.array([1.0, 0]), gallery, match, k=2) == 0.5
    assert Z.retrieval_precision(np.array([0, 1.0]), gallery, match, k=1) == 0.0
    # class features: a text feature per Table 2 word column, from the 3,920 prompts
    words = Z.table2_words()
    text = np.zeros((len(words), 8), np.float32)
    for i, (h, _, _) in enumerate(words):
        text[i, Z.FIELDS["hand_colour"].index(h)] = 1.0
    cls = Z.class_features(text, "hand_colour")
    assert cls.shape == (7, 8) and Z.zero_shot_top1(np.eye(8)[:7], cls, list(range(7))) == 1.0
