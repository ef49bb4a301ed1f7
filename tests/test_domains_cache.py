"""Domains table, seeds, captions, the on-disk cache and the `repro data` commands."""

import json

import pytest
import torch
from PIL import Image

import repro.data.cache as data_cache
import repro.data.synthetic as synthetic
from repro.cli import main
from repro.data.cache import build_domain, load_domain, load_shard, load_shards, open_domain
from repro.data.domains import DOMAINS, split_seed
from repro.data.errors import DataError
from repro.data.world.vocabulary import HAND_COLOURS, HANDS, HEADS, SCENES, SLOT_WORDS


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_split_of_every_domain_has_its_own_seed():
    seeds = [split_seed(d, s) for d in DOMAINS.values() for s in d.splits]
    assert len(seeds) == len(set(seeds))
    assert split_seed(DOMAINS["synth-clip"], "train") not in {
        split_seed(d, s) for n, d in DOMAINS.items() if n != "synth-clip" for s in d.splits
    }


def test_targets_show_styles_the_source_never_shows_from_views_it_does():
    src = DOMAINS["synth-frei"]
    for name in ("synth-stb", "synth-rhd"):
        tgt = DOMAINS[name]
        assert not set(tgt.backdrops) & set(src.backdrops + src.replaced_backdrops)
        assert set(tgt.hand_colours) - set(src.hand_colours)
        for view in ("azimuth", "elevation", "roll"):  # the gap is one of style, not of viewpoint
            lo, hi = getattr(tgt, view)
            assert getattr(src, view)[0] <= lo <= hi <= getattr(src, view)[1], (name, view)
    assert not set(DOMAINS["synth-stb"].hand_colours) & set(src.hand_colours)
    assert not DOMAINS["synth-clip"].labelled


def test_captions_follow_the_paper_grammar():
    out = synthetic.render_range(DOMAINS["synth-clip"], "train", 0, 24, 32)
    for caption, style in zip(out["caption"], out["style"]):
        head, rest = next((h, caption[len(h) + 1 :]) for h in sorted(HEADS, key=len, reverse=True) if caption.startswith(h + " "))
        colour = next(c for c in HAND_COLOURS if rest.startswith(c + " ") and c == style["hand_colour"])
        rest = rest[len(colour) + 1 :]
        hand, rest = rest.split(" with ")
        assert hand in HANDS
        slot, scene = rest.rsplit(" ", 1)
        assert slot in SLOT_WORDS and scene in SCENES and scene == style["scene"]
        assert slot in (style["backdrop"], style["lighting"])


def test_build_then_reuse_without_rendering(cache, monkeypatch):
    path = build_domain("synth-frei", "val", n=70, size=32)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["n"] == 70 and manifest["generator_version"] >= 1 and len(manifest["digest"]) == 64
    monkeypatch.setattr(synthetic, "render_range", lambda *a, **k: pytest.fail("a matching cache was re-rendered"))
    assert build_domain("synth-frei", "val", n=70, size=32) == path
    data, again = load_domain("synth-frei", "val", n=70, size=32)
    assert again["digest"] == manifest["digest"] and data["image"].shape == (70, 3, 32, 32)


def test_a_split_of_several_shards_loads_as_their_concatenation(monkeypatch):
    """load_shards copies shard by shard into tensors of the whole split: what torch.cat of the shards gives."""
    monkeypatch.setattr(data_cache, "SHARD", 64)  # RENDER_BATCH (64) divides it
    path, manifest = open_domain("synth-rhd", "test", n=70, size=32)
    assert [s["count"] for s in manifest["shards"]] == [64, 6]
    shards = [load_shard(path, s) for s in manifest["shards"]]
    data = load_shards(path, manifest)
    assert data.keys() == shards[0].keys() and data["image"].shape == (70, 3, 32, 32)
    for k, v in shards[0].items():
        if torch.is_tensor(v):
            joined = torch.cat([s[k] for s in shards])
            assert data[k].dtype == joined.dtype and torch.equal(data[k], joined), k
        else:
            assert data[k] == [x for s in shards for x in s[k]], k


def test_builders_side_by_side_render_a_cache_entry_once(cache, monkeypatch):
    """Study workers wanting the same split: one renders, the other waits for its lock, then reuses."""
    import threading

    import repro.data.cache as cache_module

    renders, real = [], cache_module._render_to
    monkeypatch.setattr(cache_module, "_render_to", lambda *a: (renders.append(a[0]), real(*a)))
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(build_domain("synth-rhd", "test", n=20, size=32, workers=1))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(renders) == 1 and len(paths) == 2 and paths[0] == paths[1]
    assert json.loads((paths[0] / "manifest.json").read_text())["n"] == 20


def test_a_corrupt_or_stale_cache_is_rebuilt(cache):
    path = build_domain("synth-frei", "val", n=10, size=32)
    digest = json.loads((path / "manifest.json").read_text())["digest"]
    shard = next(path.glob("shard-*.pt"))
    shard.write_bytes(b"garbage")
    build_domain("synth-frei", "val", n=10, size=32)
    assert json.loads((path / "manifest.json").read_text())["digest"] == digest  # same content re-rendered
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["generator_version"] = 0
    (path / "manifest.json").write_text(json.dumps(manifest))
    build_domain("synth-frei", "val", n=10, size=32)
    assert json.loads((path / "manifest.json").read_text())["generator_version"] >= 1
    assert not list(path.parent.glob("*.building")) and not list(path.parent.glob("*.stale"))


def test_the_first_samples_do_not_depend_on_the_split_size(cache):
    small, _ = load_domain("synth-rhd", "test", n=3, size=32)
    large, _ = load_domain("synth-rhd", "test", n=5, size=32)
    assert torch.equal(small["image"], large["image"][:3])


def test_the_cache_bytes_do_not_depend_on_the_number_of_render_workers(tmp_path):
    def build(workers):
        path = build_domain("synth-clip", "train", n=200, size=32, root=tmp_path / f"w{workers}", workers=workers)
        return json.loads((path / "manifest.json").read_text())

    one, two = build(1), build(2)
    assert one["digest"] == two["digest"]  # sha256 of every shard's bytes
    assert [s["count"] for s in two["shards"]] == [200]


def test_a_bad_worker_count_is_named(monkeypatch):
    monkeypatch.setenv("REPRO_RENDER_WORKERS", "two")
    with pytest.raises(DataError, match="REPRO_RENDER_WORKERS must be a positive integer, got 'two'"):
        build_domain("synth-frei", "val", n=8, size=32)
    with pytest.raises(DataError, match="--workers must be positive, got 0"):
        build_domain("synth-frei", "val", n=8, size=32, workers=0)


def test_bad_domain_and_split_are_named():
    with pytest.raises(DataError, match="synth-nope"):
        build_domain("synth-nope", "train")
    with pytest.raises(DataError, match="expected one of"):
        build_domain("synth-stb", "train")


def test_data_show_and_info_commands(cache, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "show", "--domain", "synth-stb", "--split", "test", "--count", "6", "--out", str(out)]) == 0
    assert Image.open(out).size == (4 * 256, 2 * 256)
    capsys.readouterr()
    assert main(["data", "info", "--dataset", "synth-frei", "--split", "val", "--n", "5", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["n"] == 5 and len(record["first"]) == 21 and record["first"][0][2] > 300
    assert main(["data", "build", "--domain", "synth-nope"]) == 2
