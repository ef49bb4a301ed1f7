"""`repro data export`: synthetic splits written in the FreiHAND, RHD and STB layouts read back by the real loaders."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from repro.cli import main
from repro.data import cache
from repro.data.errors import DataError
from repro.data.export import STB_FRAME, export, stb_mirrored_camera
from repro.data.geometry import project
from repro.data.registry import open_dataset
from repro.data.synthetic import SyntheticDataset

N = 8
# format -> (synthetic domain, its split, the real split written, render size)
CASES = {
    "freihand": ("synth-frei", "train", "training", 224),
    "rhd": ("synth-rhd", "test", "evaluation", 320),
    "stb": ("synth-stb", "test", "test", 256),
}


def _whole_split(dataset):
    pytest.fail(f"export read the whole of {dataset.name}/{dataset.split} into memory")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each format exported once, from a cache of two shards that export must stream one at a time:
    (root, loader's dataset, the synthetic dataset it came from)."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(cache, "SHARD", N // 2)
        mp.setattr(cache, "RENDER_BATCH", N // 2)
        for fmt, (domain, split, real_split, size) in CASES.items():
            root = tmp_path_factory.mktemp(fmt)
            with pytest.MonkeyPatch.context() as streaming:
                streaming.setattr(SyntheticDataset, "data", property(_whole_split))
                assert export(domain, fmt, root, n=N, split=split) == real_split
            synthetic = open_dataset(domain, split=split, n=N, size=size)
            synthetic.data  # read while the cache variable is set
            out[fmt] = (root, open_dataset(fmt, root=root, split=real_split), synthetic)
    return out


def synthetic_index(fmt: str, j: int, n: int) -> int:
    """The synthetic sample that the loader's sample j shows: FreiHAND's training image j is version
    j // P of pose j % P, synth-frei's sample 4 p + v."""
    if fmt != "freihand":
        return j
    poses = n // 4
    return 4 * (j % poses) + j // poses


def _pixels(K: torch.Tensor, rays: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where camera K sees each ray (..., 3), and whether that lies inside its width x height image."""
    p = rays @ K.double().T
    uv = p[..., :2] / p[..., 2:]
    return uv, ((uv >= 1) & (uv <= torch.tensor([width - 2.0, height - 2.0], dtype=uv.dtype))).all(dim=-1)


def misfit(loaded, synthetic, frame: tuple[torch.Tensor, int, int] | None, shift: tuple[float, float] = (0.0, 0.0)) -> float:
    """Mean absolute difference between the loader's crop and the synthetic crop resampled at the same
    rays, `shift` px off (x, y), over the pixels both the synthetic crop and the exported `frame` (its
    camera, width, height; None: the crop itself) show."""
    size, width = loaded.image.shape[-1], synthetic.image.shape[-1]
    j = torch.arange(size, dtype=torch.float64)
    v, u = torch.meshgrid(j, j, indexing="ij")
    rays = torch.stack([u + shift[0], v + shift[1], torch.ones_like(u)], dim=-1) @ torch.linalg.inv(loaded.K.double()).T
    uv, inside = _pixels(synthetic.K, rays, width, width)
    if frame is not None:
        inside &= _pixels(*frame[:1], rays, *frame[1:])[1]
    grid = ((2 * uv + 1) / width - 1).float()[None]  # pixel centres at integers, align_corners=False
    reference = F.grid_sample(synthetic.image[None].float(), grid, align_corners=False)[0]
    return float((reference - loaded.image.float()).abs().mean(dim=0)[inside].mean())


@pytest.mark.parametrize("fmt", list(CASES))
def test_the_loader_reads_back_the_synthetic_joints_and_visibility(exported, fmt):
    _, loaded, synthetic = exported[fmt]
    assert len(loaded) == N
    sides = []
    for j in range(N):
        sample, original = loaded[j], synthetic[synthetic_index(fmt, j, N)]
        # metres in JSON (float64) and in .mat come back exactly; RHD's float32 metres to a few 1e-5 mm
        torch.testing.assert_close(sample.xyz, original.xyz, rtol=0, atol=1e-4)
        if fmt == "rhd":  # RHD stores the flags; its loader picks the synthetic (right) hand
            assert sample.visible.tolist() == original.visible.tolist() and sample.meta["hand"] == "right"
        elif fmt == "freihand":  # FreiHAND has no flags: every joint counts
            assert sample.visible.all()
        else:  # STB: a joint counts when it projects inside the frame, here of the mirrored camera
            uv = project(torch.from_numpy(stb_mirrored_camera()), original.xyz.double())
            inside = ((uv >= 0) & (uv <= torch.tensor([STB_FRAME[0] - 1.0, STB_FRAME[1] - 1.0]))).all(dim=1)
            assert sample.visible.tolist() == inside.tolist()
        sides.append(sample.meta["mirrored"])
        # the pixels too: the loader's crop shows what the synthetic crop shows along the same rays, to
        # better than half a pixel (STB's frame may cut off part of the rendered crop: the synthetic
        # camera looks further off axis)
        frame = (torch.from_numpy(stb_mirrored_camera()), *STB_FRAME) if fmt == "stb" else None
        aligned = misfit(sample, original, frame)
        assert all(aligned < misfit(sample, original, frame, shift) for shift in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)))
    assert sides == [fmt == "stb"] * N  # STB's are left hands, mirrored back by its loader


def test_freihand_layout_and_versions(exported):
    root, _, synthetic = exported["freihand"]
    assert sorted(p.name for p in (root / "training" / "rgb").iterdir()) == [f"{j:08d}.jpg" for j in range(N)]
    xyz = np.array(json.loads((root / "training_xyz.json").read_text()))
    K = np.array(json.loads((root / "training_K.json").read_text()))
    assert xyz.shape == (N // 4, 21, 3) and K.shape == (N // 4, 3, 3)
    np.testing.assert_allclose(xyz * 1000, synthetic.data["xyz"][::4].double().numpy(), atol=1e-9)  # metres, one entry per pose
    np.testing.assert_allclose(K, synthetic.data["K"][::4].double().numpy())


def test_cli_export_then_info(repro_cache, tmp_path, capsys):
    root = tmp_path / "freihand"
    assert main(["data", "export", "--domain", "synth-frei", "--format", "freihand", "--out", str(root), "--n", "4", "--split", "val"]) == 0
    assert capsys.readouterr().out.strip() == str(root)
    assert main(["data", "info", "--dataset", "freihand", "--root", str(root), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    first = open_dataset("synth-frei", split="val", n=4, size=224)[0].xyz
    assert record["n"] == 4
    np.testing.assert_allclose(record["first"], first.numpy(), atol=1e-3)
    # a split is never written over
    assert main(["data", "export", "--domain", "synth-frei", "--format", "freihand", "--out", str(root), "--n", "4", "--split", "val"]) == 2
    assert f"repro: error: {root / 'evaluation_xyz.json'}: already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("synth-frei", "freihand", 4, "test"),
            r"freihand has no split for a synthetic 'test' split; export one of its roles \(train -> training",
        ),
        (("synth-clip", "freihand", 4, None), "domain 'synth-clip' has no pose labels"),
        (("synth-stb", "stb", 1, None), "--n 1: STB's test split has 2 sequences"),
        (("synth-frei", "freihand", 6, "train"), "--n 6: FreiHAND's training split holds 4 versions of each pose"),
        (("synth-frei", "coco", 4, None), "unknown export format 'coco'"),
    ],
)
def test_export_refuses_what_the_format_cannot_hold(repro_cache, tmp_path, args, message):
    domain, fmt, n, split = args
    with pytest.raises(DataError, match=message):
        export(domain, fmt, tmp_path / "out", n=n, split=split)
