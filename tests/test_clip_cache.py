"""The frozen-feature cache: computed once per (encoder weights, preprocessing, data), atomic on disk."""

import pytest
import torch
from fixtures_clip import FakeCaptionedDataset, FakeEncoder, save_random_open_clip

from repro.clip import ClipError
from repro.clip.encoders import build_encoder
from repro.clip.features import image_features, text_features
from repro.clip.prompts import all_prompts


def test_second_pass_calls_no_encoder(repro_cache):
    dataset, encoder = FakeCaptionedDataset(10), FakeEncoder()
    first = image_features(encoder, dataset, batch_size=4)
    assert first.shape == (10, encoder.dim) and encoder.image_calls == 3  # batches of 4, 4, 2
    again = FakeEncoder()
    torch.testing.assert_close(image_features(again, dataset, batch_size=4), first, rtol=0, atol=0)
    assert again.image_calls == 0
    # Row i is sample i's feature.
    torch.testing.assert_close(first[7:8], encoder.encode_images(dataset[7].image[None]))


def test_text_features_default_to_the_3920_prompts(repro_cache):
    encoder = FakeEncoder()
    first = text_features(encoder, batch_size=1000)
    assert first.shape == (3920, encoder.dim) and encoder.text_calls == 4
    torch.testing.assert_close(first[:3], encoder.encode_texts(all_prompts()[:3]))
    again = FakeEncoder()
    torch.testing.assert_close(text_features(again), first, rtol=0, atol=0)
    assert again.text_calls == 0
    # Other prompts are another entry.
    assert text_features(again, all_prompts()[:2]).shape == (2, encoder.dim) and again.text_calls == 1


@pytest.mark.parametrize("change", ["weights", "preprocessing", "dataset digest", "dataset length"])
def test_any_change_of_key_recomputes(repro_cache, change):
    dataset = FakeCaptionedDataset(6)
    image_features(FakeEncoder(), dataset)
    encoder = FakeEncoder()
    if change == "weights":
        encoder.weights_digest = "1" * 64
    if change == "preprocessing":
        encoder.preprocessing = "fake-48px"
    if change == "dataset digest":
        dataset = FakeCaptionedDataset(6, digest="other")
    if change == "dataset length":
        dataset = FakeCaptionedDataset(5, digest=dataset.digest)
    image_features(encoder, dataset)
    assert encoder.image_calls == 1
    assert len(list((repro_cache / "features").iterdir())) == 2


def test_killed_fill_leaves_no_entry(repro_cache):
    class Dies(FakeEncoder):
        def encode_images(self, images):
            if self.image_calls == 1:
                raise KeyboardInterrupt  # as if killed half-way through the fill
            return super().encode_images(images)

    with pytest.raises(KeyboardInterrupt):
        image_features(Dies(), FakeCaptionedDataset(8), batch_size=4)
    assert list((repro_cache / "features").rglob("*")) == []

    # A features file without its manifest (killed between the two renames) is not trusted.
    encoder, dataset = FakeEncoder(), FakeCaptionedDataset(8)
    image_features(encoder, dataset)
    (entry,) = (repro_cache / "features").iterdir()
    (entry / "manifest.json").unlink()
    torch.save(torch.zeros(8, encoder.dim), entry / "features.pt")
    again = FakeEncoder()
    assert image_features(again, dataset).abs().sum() > 0 and again.image_calls == 1
    assert sorted(p.name for p in entry.iterdir()) == ["features.pt", "manifest.json"]


def test_dataset_without_digest_is_refused(repro_cache):
    with pytest.raises(ClipError, match="has no `digest`"):
        image_features(FakeEncoder(), [FakeCaptionedDataset(2)[0]])


def test_real_synthclip_cache_keys_on_the_checkpoint(repro_cache, tmp_path):
    dataset = FakeCaptionedDataset(6)
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    save_random_open_clip("synthclip", first, seed=1)
    save_random_open_clip("synthclip", second, seed=2)

    def counted(path):
        encoder = build_encoder("synthclip", checkpoint=path)
        encode, encoder.calls = encoder.encode_images, 0

        def counting(images):
            encoder.calls += 1
            return encode(images)

        encoder.encode_images = counting
        return encoder

    a = counted(first)
    features = image_features(a, dataset)
    assert a.calls == 1 and features.shape == (6, 256)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(6))
    a_again = counted(first)
    torch.testing.assert_close(image_features(a_again, dataset), features, rtol=0, atol=0)
    assert a_again.calls == 0
    b = counted(second)
    other = image_features(b, dataset)
    assert b.calls == 1 and (other - features).abs().max() > 1e-3
