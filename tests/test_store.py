"""The decoded-crop store of real splits: built once (across processes), equal to the loader, memory-mapped,
the source of training tensors and CLIP features; a run's layout is checked before anything is decoded."""

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import fixtures_real as fx
import numpy as np
import pytest
import torch
from fixtures_clip import FakeEncoder, save_random_open_clip

from repro.cli import main
from repro.clip.features import image_features
from repro.data import store
from repro.data.errors import DataError
from repro.data.real import common
from repro.data.real.freihand import FreiHAND
from repro.data.store import StoredSplit, open_store, store_dir
from repro.train.data import load_split


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A --data-root holding freihand/ (8 training images: 2 poses x 4 versions, 2 evaluation) and stb/."""
    root = tmp_path_factory.mktemp("data")
    fx.write_freihand((root / "freihand").mkdir() or root / "freihand")
    fx.write_stb(root / "stb")
    return root


def no_decoding(monkeypatch) -> None:
    """Fail the test if any image is read from here on."""

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr(common, "read_image", refuse)


def mapped_file(tensor: torch.Tensor) -> str | None:
    """The file whose memory map holds `tensor`'s data (Linux's /proc/self/maps), None for anonymous memory."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) > 5 else None
    return None


def assert_samples_equal(stored, loaded) -> None:
    for key in ("image", "xyz", "uv", "K", "visible"):
        assert torch.equal(getattr(stored, key), getattr(loaded, key)), key


def test_store_equals_the_loader_and_is_mapped_again_without_a_build(repro_cache, data_root, monkeypatch):
    dataset = FreiHAND(data_root / "freihand", "training", size=64)
    stored = open_store(dataset, workers=1)
    assert stored.folder == repro_cache / "store" / "freihand" / f"training-{dataset.digest[:16]}-64"
    assert sorted(p.name for p in stored.folder.iterdir()) == ["images.npy", "labels.npz", "manifest.json"]
    assert stored.images.shape == (8, 3, 64, 64) and stored.images.dtype == torch.uint8
    assert mapped_file(stored.images) == str(stored.folder / "images.npy")  # mapped, not read into memory
    assert len(stored) == 8 and stored.digest == dataset.digest
    assert torch.equal(stored.pose_groups(), dataset.pose_groups())
    for i in range(8):
        assert_samples_equal(stored[i], dataset[i])

    monkeypatch.setattr(store, "_build", lambda *args: pytest.fail("rebuilt a complete store"))
    no_decoding(monkeypatch)
    again = open_store(FreiHAND(data_root / "freihand", "training", size=64))
    assert torch.equal(again.images, stored.images)
    # another crop size or n is another store
    assert store_dir(FreiHAND(data_root / "freihand", "training", size=32)) != stored.folder
    assert store_dir(FreiHAND(data_root / "freihand", "training", n=4, size=64)) != stored.folder


@pytest.mark.slow
def test_a_pool_build_writes_the_same_store(tmp_path, data_root, monkeypatch):
    dataset = FreiHAND(data_root / "freihand", "training", size=48)
    built = {}
    for workers in (1, 2):
        monkeypatch.setenv("REPRO_CACHE", str(tmp_path / f"w{workers}"))
        stored = open_store(dataset, workers=workers)
        built[workers] = (stored.images.clone(), {k: v.clone() for k, v in stored.labels.items()})
    assert torch.equal(built[1][0], built[2][0])
    assert all(torch.equal(built[1][1][k], built[2][1][k]) for k in store.LABELS)


def test_a_killed_build_leaves_no_store(repro_cache, data_root, monkeypatch):
    dataset = FreiHAND(data_root / "freihand", "training", size=32)

    def dies(dataset, images, start, stop):
        raise KeyboardInterrupt  # as if killed half-way through the decoding

    monkeypatch.setattr(store, "_decode_into", dies)
    with pytest.raises(KeyboardInterrupt):
        open_store(dataset, workers=1)
    folder = store_dir(dataset)
    assert not folder.exists() and not folder.with_name(folder.name + ".building").exists()
    monkeypatch.undo()
    assert_samples_equal(open_store(dataset, workers=1)[3], dataset[3])


def test_a_disk_too_small_for_the_store_is_an_error_before_any_decoding(repro_cache, data_root, monkeypatch):
    dataset = FreiHAND(data_root / "freihand", "training", size=32)  # 8 x 3 x 32 x 32 bytes of images
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: shutil_usage(free=8 * 3 * 32 * 32 - 1))
    no_decoding(monkeypatch)
    with pytest.raises(DataError, match=r"crop store of freihand/training needs 0\.00 GiB .* \$REPRO_CACHE"):
        open_store(dataset, workers=1)
    folder = store_dir(dataset)
    assert not folder.exists() and not folder.with_name(folder.name + ".building").exists()
    monkeypatch.undo()  # the disk's own free space, and decoding allowed
    assert len(open_store(dataset, workers=1)) == 8


def shutil_usage(free: int):
    return SimpleNamespace(total=free, used=0, free=free)


BUILDER = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path

    import numpy as np

    from repro.data import store
    from repro.data.real.freihand import FreiHAND

    build = store._build


    def log(line):
        with open(sys.argv[2], "a") as f:
            f.write(line + "\\n")


    def counted(*args):
        # Hold the lock until the other process wants the store too (a fixed wait lost that race on a
        # loaded machine), at most 120 s.
        deadline = time.monotonic() + 120
        while open(sys.argv[2]).read().count("open") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        build(*args)
        log(f"built {time.time()}")


    store._build = counted
    dataset = FreiHAND(Path(sys.argv[1]), "training", size=64)
    log(f"open {time.time()}")
    stored = store.open_store(dataset, workers=1)
    print(stored.folder, hashlib.sha256(np.ascontiguousarray(stored.images.numpy())).hexdigest())
    """
)


@pytest.mark.slow
def test_two_processes_build_one_store(repro_cache, data_root, tmp_path):
    script, log = tmp_path / "builder.py", tmp_path / "builds.log"
    script.write_text(BUILDER)
    env = {**os.environ, "REPRO_CACHE": str(repro_cache)}
    runs = [
        subprocess.Popen([sys.executable, str(script), str(data_root / "freihand"), str(log)], env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0].decode().split() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    lines = [line.split() for line in log.read_text().splitlines()]
    built, opened = [float(t) for what, t in lines if what == "built"], [float(t) for what, t in lines if what == "open"]
    assert len(built) == 1 and len(opened) == 2 and max(opened) < built[0]  # both wanted the store while it was built ...
    # ... and only one built it: the other waited for the lock, then mapped the first one's store
    (folder, digest), other = outputs
    assert other == [folder, digest]
    expected = open_store(FreiHAND(data_root / "freihand", "training", size=64))
    assert hashlib.sha256(np.ascontiguousarray(expected.images.numpy())).hexdigest() == digest


def test_load_split_maps_a_real_split_from_its_store(repro_cache, data_root):
    split = load_split("freihand", "train", None, 64, str(data_root))
    dataset = FreiHAND(data_root / "freihand", "training", size=64)
    assert isinstance(split.dataset, StoredSplit) and split.digest == dataset.digest
    assert mapped_file(split.images) == str(split.dataset.folder / "images.npy")
    for i in (0, 5):
        loaded = dataset[i]
        assert torch.equal(split.images[i], loaded.image) and torch.equal(split.xyz[i], loaded.xyz)
        assert torch.equal(split.uv[i], loaded.uv) and torch.equal(split.visible[i], loaded.visible)


def test_clip_features_read_the_store_not_the_images(repro_cache, data_root, monkeypatch):
    dataset = FreiHAND(data_root / "freihand", "training", size=32)
    expected = FakeEncoder().encode_images(torch.stack([dataset[i].image for i in range(len(dataset))]))
    stored = open_store(dataset, workers=1)
    no_decoding(monkeypatch)
    encoder = FakeEncoder()
    features = image_features(encoder, stored, batch_size=3, device="cpu")
    torch.testing.assert_close(features, expected, rtol=0, atol=0)
    assert encoder.image_calls == 3  # batches of 3, 3, 2
    again = FakeEncoder()
    torch.testing.assert_close(image_features(again, stored, device="cpu"), features, rtol=0, atol=0)
    assert again.image_calls == 0


@pytest.mark.parametrize("missing", ["freihand evaluation annotation", "stb target"])
def test_a_run_checks_every_split_before_decoding_any(tmp_path, monkeypatch, capsys, missing):
    """A run on the real datasets opens (and so checks) every split it reads before it decodes the first
    image: a missing file fails at once, naming its path, with nothing built."""
    root = tmp_path / "data"
    fx.write_freihand((root / "freihand").mkdir(parents=True) or root / "freihand")
    targets = ""
    if missing == "stb target":
        targets, path = "stb", root / "stb"
    else:
        path = root / "freihand" / "evaluation_xyz.json"
        path.unlink()
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    no_decoding(monkeypatch)
    argv = ["train", "--preset", "tiny", "--source", "freihand", "--targets", targets, "--data-root", str(root), "--set", "mode=baseline"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"repro: error: {path}: no such ")
    if missing != "stb target":
        assert "FreiHAND_pub_v2_eval.zip" in err  # where the evaluation annotations come from
    assert not (tmp_path / "cache" / "store").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_store_and_clip_features_on_cuda(repro_cache, data_root, tmp_path):
    from repro.clip.encoders import build_encoder

    checkpoint = tmp_path / "synthclip.pt"
    save_random_open_clip("synthclip", checkpoint)
    split = load_split("freihand", "train", None, 64, str(data_root))
    encoder = build_encoder("synthclip", checkpoint=checkpoint)
    on_cpu = image_features(encoder, split.dataset, device="cpu")
    on_cuda = image_features(encoder, split.dataset, device="cuda")  # bf16 autocast: an entry of its own
    assert on_cuda.device.type == "cpu" and on_cuda.dtype == torch.float32 and on_cuda.shape == on_cpu.shape
    assert len(list((repro_cache / "features").iterdir())) == 2
    assert (on_cpu * on_cuda).sum(dim=1).min() > 0.99  # unit vectors: cosine similarity
    assert next(encoder.model.parameters()).device.type == "cpu" and str(encoder.device) == "cpu"  # put back
    # the mapped crops feed the GPU as they are
    x = split.images[torch.tensor([1, 6])].cuda()
    assert torch.equal(x.cpu(), torch.stack([split.dataset[1].image, split.dataset[6].image]))
