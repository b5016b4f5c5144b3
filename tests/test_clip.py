"""The CLIP wrapper: tiny model registration, weight resolution (offline, cache, tags), encoders."""

import time

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import save_file

from hcdg.pipeline import clip as C
from hcdg.pipeline.errors import HcdgError
from hcdg.store import clip_weights as W


def test_tiny_model_registered_through_open_clip_config():
    C.register_model_configs()
    C.register_model_configs()  # idempotent
    assert (C.CLIP_CONFIG_DIR / "hcdg-tiny.json").is_file()
    assert "hcdg-tiny" in open_clip.list_models()
    assert open_clip.get_model_config("hcdg-tiny")["embed_dim"] == 512  # same D as ViT-B-32
    enc = W.load_encoder("hcdg-tiny", "none")
    assert sum(p.numel() for p in enc.model.parameters()) < 3_000_000
    assert not enc.model.training and not any(p.requires_grad for p in enc.model.parameters())
    assert enc.embed_dim == 512 and enc.image_size == (64, 64)
    ident = enc.identity()
    assert ident["weights"] == {"kind": "random", "seed": 0} and ident["model"] == "hcdg-tiny"


def test_random_weights_follow_the_seed_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = W.load_encoder("hcdg-tiny", "none", seed=0)
    after = torch.rand(1)
    b = W.load_encoder("hcdg-tiny", "none", seed=0)
    c = W.load_encoder("hcdg-tiny", "none", seed=1)
    assert torch.equal(before, after)
    pa, pb, pc = (dict(e.model.named_parameters()) for e in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["visual.conv1.weight"], pc["visual.conv1.weight"])
    # documented recipe: torch.manual_seed(seed) then open_clip's own init
    torch.manual_seed(0)
    ref = open_clip.create_model("hcdg-tiny")
    assert all(torch.equal(pa[k], p) for k, p in ref.named_parameters())


def test_openai_offline_fails_fast_naming_file_and_place(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    t0 = time.perf_counter()
    with pytest.raises(HcdgError) as err:
        W.resolve_weights("ViT-B-32", "openai")
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "\n" not in msg
    assert "open_clip_model.safetensors" in msg and "timm/vit_base_patch32_clip_224.openai" in msg
    assert str(tmp_path / "hub") in msg and "--pretrained openai=" in msg


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(W, "_hub_reachable", lambda timeout_s=3.0: False)
    with pytest.raises(HcdgError, match="unreachable"):
        W.resolve_weights("ViT-B-32", "openai")


def _fake_hf_cache(root, repo_id, filename, payload: bytes):
    folder = root / f"models--{repo_id.replace('/', '--')}"
    snap = folder / "snapshots" / "0123456789abcdef"
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123456789abcdef")
    (snap / filename).write_bytes(payload)
    return snap / filename


def test_tag_weights_found_in_the_hf_cache_get_quick_gelu_and_tag_preprocessing(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    path = _fake_hf_cache(tmp_path, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors", b"x")
    src = W.resolve_weights("ViT-B-32", "openai")
    assert src.kind == "tag" and src.tag == "openai" and src.path == path
    # open_clip 3.x does not switch ViT-B-32 to QuickGELU for tag openai by itself: we must.
    assert src.quick_gelu is True
    assert src.preprocess["mean"] == open_clip.OPENAI_DATASET_MEAN and src.preprocess["interpolation"] == "bicubic"
    explicit = W.resolve_weights("ViT-B-32", f"openai={path}")
    assert explicit.quick_gelu and explicit.path == path


def test_tag_file_is_loaded_with_quick_gelu_and_hashed(monkeypatch, tmp_path):
    """The whole tag path on a tiny stand-in: a registered tag with quick_gelu, weights in the HF cache."""
    from open_clip import pretrained as op

    tag_cfg = op._pcfg(hf_hub="hcdg/tiny-test/", quick_gelu=True, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    monkeypatch.setitem(op._PRETRAINED, "hcdg-tiny", {"testtag": tag_cfg})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    C.register_model_configs()
    torch.manual_seed(7)
    donor = open_clip.create_model("hcdg-tiny", force_quick_gelu=True)
    folder = tmp_path / "models--hcdg--tiny-test" / "snapshots" / "abc"
    folder.mkdir(parents=True)
    (tmp_path / "models--hcdg--tiny-test" / "refs").mkdir()
    (tmp_path / "models--hcdg--tiny-test" / "refs" / "main").write_text("abc")
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, folder / "open_clip_model.safetensors")
    enc = W.load_encoder("hcdg-tiny", "testtag")
    assert C._uses_quick_gelu(enc.model)
    assert torch.equal(enc.model.visual.conv1.weight, donor.visual.conv1.weight)
    ident = enc.identity()
    assert ident["quick_gelu"] is True and ident["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert ident["weights"]["kind"] == "tag" and ident["weights"]["tag"] == "testtag"
    assert ident["weights"]["sha256"] == W.file_sha256(folder / "open_clip_model.safetensors")
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(enc.encode_images(x), donor.eval().encode_image(x), atol=1e-6)


def test_bad_model_and_tag_are_one_line_errors(tmp_path):
    with pytest.raises(HcdgError, match="unknown open_clip model"):
        W.resolve_weights("ViT-Q-99", "none")
    with pytest.raises(HcdgError, match=r"neither a tag of ViT-B-32 \(known: openai"):
        W.resolve_weights("ViT-B-32", "no-such-tag")
    with pytest.raises(HcdgError, match="not a tag of ViT-B-32"):
        W.resolve_weights("ViT-B-32", f"nosuch={tmp_path}")
    with pytest.raises(HcdgError, match="open_clip_config.json"):
        W.resolve_weights(f"local-dir:{tmp_path}", None)
    with pytest.raises(HcdgError, match="fp16 needs a GPU"):
        W.load_encoder("hcdg-tiny", "none", precision="fp16", device="cpu")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(HcdgError, match="cannot build CLIP"):
        W.load_encoder("hcdg-tiny", str(bad))


def test_encoders_match_open_clip_and_texts_batch_invariant():
    enc = W.load_encoder("hcdg-tiny", "none", seed=3)
    texts = ["a photo of a hand", "one brown right hand with dotted room", "a picture of black hand with red room"]
    torch.manual_seed(3)
    ref = open_clip.create_model("hcdg-tiny").eval()
    tok = open_clip.get_tokenizer("hcdg-tiny")
    with torch.inference_mode():
        want = ref.encode_text(tok(texts))
    got = enc.encode_texts(texts, batch_size=2)
    assert torch.allclose(got, want, atol=1e-5)
    assert np.allclose(C.l2_norms(got.numpy()), torch.linalg.norm(want, dim=1).numpy(), rtol=1e-5)
