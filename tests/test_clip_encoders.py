"""CLIP encoders from spec strings: local checkpoints, synthclip, and open_clip tags offline."""

import hashlib
import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from fixtures_clip import save_random_open_clip
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

from repro.cli import main
from repro.clip import ClipError, synthclip
from repro.clip import pretrain as pretrain_module
from repro.clip.encoders import build_encoder
from repro.clip.preprocess import input_size
from repro.clip.prompts import all_prompts

TEXT = "a photo of right dark brown hand with blue background"


@pytest.fixture(scope="module")
def vit_b_32(tmp_path_factory):
    """ViT-B-32 with random weights, saved as an open_clip state dict."""
    path = tmp_path_factory.mktemp("vit") / "vit-b-32.pt"
    return save_random_open_clip("ViT-B-32", path, seed=0), path


def _embed(capsys, *args) -> dict:
    assert main(["clip", "embed", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_vit_b_32_checkpoint_through_the_cli_matches_the_model(vit_b_32, tmp_path, capsys):
    import open_clip

    model, path = vit_b_32
    # A 224x224 image needs no resize, so open_clip's own PIL pipeline and ours see the same pixels.
    pixels = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    with torch.no_grad():
        want_text = F.normalize(model.encode_text(open_clip.get_tokenizer("ViT-B-32")([TEXT])), dim=-1)[0]
        cfg = model.visual.preprocess_cfg
        transform = open_clip.image_transform(cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"])
        want_image = F.normalize(model.encode_image(transform(Image.open(tmp_path / "x.png"))[None]), dim=-1)[0]

    for args, want in ((["--text", TEXT], want_text), (["--image", str(tmp_path / "x.png")], want_image)):
        out = _embed(capsys, "--clip", "ViT-B-32", "--clip-checkpoint", str(path), *args)
        feature = torch.tensor(out["feature"])
        assert out["clip"] == "ViT-B-32+checkpoint" and out["dim"] == 512 and feature.shape == (512,)
        assert abs(feature.norm().item() - 1) < 1e-5
        torch.testing.assert_close(feature, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("hub_offline", [True, False])
def test_pretrained_tag_offline_fails_fast_naming_the_alternatives(monkeypatch, tmp_path, capsys, hub_offline):
    import huggingface_hub.constants

    from repro.clip import hub

    # No cached copy anywhere, whatever this machine holds.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))
    probed = []
    if not hub_offline:  # the network probe's path: no variable set, no host answers
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(hub, "_reachable", lambda host: probed.append(host) or False)

    downloads = []  # open_clip's download retries for most of a minute: failing fast is never calling it
    monkeypatch.setattr(open_clip, "download_pretrained", lambda *a, **k: downloads.append(a) or "/nonexistent")
    assert main(["clip", "embed", "--clip", "ViT-B-32:openai", "--text", TEXT]) == 2
    assert downloads == [] and len(probed) == (0 if hub_offline else 1)
    err = capsys.readouterr().err
    assert "ViT-B-32:openai" in err and "--clip synthclip" in err and "--clip-checkpoint PATH" in err


@pytest.mark.slow
def test_synthclip_recipe_is_pretrained_on_first_use_then_reused(repro_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    encoder = build_encoder("synthclip:tiny")  # an empty cache: pre-trains the tiny recipe first
    recipe = synthclip.parse_tag("tiny")
    manifest = json.loads(recipe.manifest_path().read_text())
    assert (encoder.identity, encoder.weights_digest) == ("synthclip:tiny", manifest["weights_sha256"])
    assert manifest["recipe"]["tag"] == "tiny" and manifest["recipe"]["training"]["steps"] == 6
    monkeypatch.setattr(pretrain_module, "train", lambda *a, **k: pytest.fail("pre-trained twice"))
    assert build_encoder("synthclip:tiny,seed=0").weights_digest == encoder.weights_digest  # one recipe, one tag
    # Another recipe has its own folder: the tiny checkpoint is never replaced by it.
    assert synthclip.parse_tag("tiny,seed=1").directory() != recipe.directory()
    assert synthclip.parse_tag("small").directory() != recipe.directory()


def test_checkpoint_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(ClipError, match=f"{missing} does not exist"):
        build_encoder("synthclip", checkpoint=missing)
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3)}, wrong)
    with pytest.raises(ClipError, match=f"{wrong} is not an open_clip state dict for synthclip"):
        build_encoder("synthclip", checkpoint=wrong)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipError, match=f"{garbage} is not an open_clip state dict"):
        build_encoder("synthclip", checkpoint=garbage)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ViT-B-3", "unknown CLIP model 'ViT-B-3'; did you mean ViT-B-32"),
        ("ViT-B-32", "ViT-B-32 needs weights"),
        ("ViT-B-32:no-such-tag", "no pretrained weights ViT-B-32:no-such-tag"),
        ("synthclip:openai", "unknown synthclip preset 'openai'; known: small, tiny"),
        ("synthclip:tiny,steps=x", "bad synthclip tag 'tiny,steps=x'"),
    ],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(ClipError, match=message):
        build_encoder(spec)


def test_input_size_reads_both_forms_of_open_clip_preprocess_cfg():
    # An int for the ResNet towers (synthclip's), an (H, W) pair for the ViTs.
    assert input_size({"size": 64}) == 64 and input_size({"size": (224, 224)}) == 224 and input_size({"size": [32, 32]}) == 32


def test_synthclip_from_checkpoint(tmp_path):
    path = tmp_path / "synthclip.pt"
    model = save_random_open_clip("synthclip", path, seed=1)
    encoder = build_encoder("synthclip", checkpoint=path)
    assert (encoder.identity, encoder.dim, encoder.image_size) == ("synthclip+checkpoint", 256, 64)
    assert encoder.weights_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not any(p.requires_grad for p in encoder.model.parameters()) and not encoder.model.training

    # Renders of another size are resized to 64x64 first: same features as resizing by hand.
    images = torch.randint(0, 256, (3, 3, 128, 128), dtype=torch.uint8)
    features = encoder.encode_images(images)
    assert features.shape == (3, 256)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(3))
    with torch.no_grad():
        small = F.interpolate(images.float(), size=64, mode="bicubic", antialias=True).round().clamp(0, 255)
        mean, std = torch.tensor(OPENAI_DATASET_MEAN), torch.tensor(OPENAI_DATASET_STD)
        want = F.normalize(model.encode_image((small / 255 - mean[:, None, None]) / std[:, None, None]), dim=-1)
    torch.testing.assert_close(features, want, atol=2e-3, rtol=0)

    # Every prompt fits the 16-token context: its end token is inside the window, not truncated.
    tokens = encoder.tokenizer(all_prompts())
    assert tokens.shape == (3920, 16) and int((tokens != 0).sum(dim=1).max()) == 14
    texts = encoder.encode_texts(all_prompts()[:5])
    assert texts.shape == (5, 256)
    torch.testing.assert_close(texts.norm(dim=1), torch.ones(5))
