"""`repro data export`: a synthetic split written in a real dataset's on-disk layout, as its loader reads it.

So that the real loaders, the crop store and trainings on real data run end to end here, on data whose
every joint is known. Each format takes its joint order, camera and sequences from its loader's own
tables, so the loader reads back the synthetic samples' 3D joints (to the format's units) and, where
the format stores them, their visibility flags. Synthetic hands are right hands in the camera frame of
their crop (repro.data.synthetic).

- freihand: `<split>/rgb/%08d.jpg`, the 224x224 crop as rendered; `<split>_xyz.json` (metres) and
  `<split>_K.json` (the crop's intrinsics), one entry per pose. FreiHAND's training split holds each pose
  in 4 versions, image v * P + p: a domain with 4 versions per pose (synth-frei) writes them there, a
  domain with one writes its render in all 4; evaluation holds one image per entry.
- rhd: `<split>/color/%05d.png` (320x320), `<split>/mask/%05d.png` (the hand's pixels labelled with RHD's
  first right-hand label, the rest background), `<split>/anno_<split>.pickle` with both hands in RHD's
  joint order, metres, float32 as RHD ships them: the synthetic hand as the right hand with its
  visibility, the left hand absent (zeros, no keypoint visible).
- stb: left hands, as STB shows: `labels/<seq>_SK.mat` (handPara in mm, STB's order with its palm centre,
  the depth camera's frame) and `images/<seq>/SK_color_%d.png` (640x480, the SK colour camera). The
  synthetic right hand is mirrored: its crop is mapped into the SK colour camera with the principal point
  mirrored (another pinhole image of the same rays: a scale and a shift), black outside the crop, then
  flipped. The frames are dealt to the split's sequences in order, in equal parts.

The synthetic split is the one of the same role (repro.train.data.SPLIT_OF_ROLE): synth-frei's train is
FreiHAND's training split, its val FreiHAND's evaluation, synth-stb's test STB's test, synth-rhd's test
RHD's evaluation. An existing split under --out is never overwritten. The split is read from its render
cache one shard at a time, so memory does not grow with --n.
"""

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image

from repro.data.domains import get_domain
from repro.data.errors import DataError
from repro.data.joints import WRIST, palm_centre
from repro.data.real import freihand, rhd, stb
from repro.data.registry import open_dataset
from repro.data.synthetic import render_range

FREIHAND_SIZE = 224  # FreiHAND's images
RHD_SIZE = 320  # RHD's images
STB_FRAME = (640, 480)  # the SK colour camera's images (stb.SK_COLOR_K)
STB_RENDER_SIZE = 256  # crops rendered at about the hand's size in STB's frames, then mapped into them
JPEG_QUALITY = 95


def _refuse_existing(paths: list[Path]) -> None:
    for path in paths:
        if path.exists():
            raise DataError(f"{path}: already exists; export writes a split only where none is (remove it or choose another --out)")


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def _write_freihand(data, out: Path, split: str) -> None:
    n, count = len(data), freihand.VERSIONS[split]
    xyz_path, K_path, rgb = out / f"{split}_xyz.json", out / f"{split}_K.json", out / split / "rgb"
    _refuse_existing([xyz_path, K_path, out / split])
    # source[v, p]: the synthetic sample shown by FreiHAND image v * P + p (version v of pose p).
    if count == 1 or data.domain.versions == 1:
        source = torch.arange(n).expand(count, n)
    elif data.domain.versions == count:
        if n % count:
            raise DataError(f"--n {n}: FreiHAND's {split} split holds {count} versions of each pose; export a multiple of {count}")
        source = torch.arange(n).view(n // count, count).T
    else:
        raise DataError(
            f"domain {data.name!r} renders {data.domain.versions} versions per pose; FreiHAND's {split} split holds {count} or one"
        )
    shown_in = [[] for _ in range(n)]  # the FreiHAND images that show each synthetic sample
    for j, i in enumerate(source.reshape(-1).tolist()):
        shown_in[i].append(j)
    rgb.mkdir(parents=True)
    xyz, K = torch.empty(n, 21, 3, dtype=torch.float64), torch.empty(n, 3, 3, dtype=torch.float64)
    for start, d in data.shards():
        for k, image in enumerate(d["image"]):
            picture = _pil(image)
            for j in shown_in[start + k]:
                picture.save(rgb / f"{j:08d}.jpg", quality=JPEG_QUALITY)
        stop = start + len(d["image"])
        xyz[start:stop], K[start:stop] = d["xyz"].double(), d["K"].double()
    poses = source[0]  # the versions of a pose share its joints and camera
    xyz_path.write_text(json.dumps((xyz[poses] / 1000.0).tolist()))
    K_path.write_text(json.dumps(K[poses].tolist()))


MASK_BATCH = 64


def _write_rhd(data, out: Path, split: str) -> None:
    folder = out / split
    _refuse_existing([folder])
    (folder / "color").mkdir(parents=True)
    (folder / "mask").mkdir()
    right = 21 + np.array(rhd.RHD_TO_CANONICAL)  # RHD slot of each canonical joint of the right hand
    anno = {}
    for start, d in data.shards():
        for k in range(len(d["image"])):
            i = start + k
            if i % MASK_BATCH == 0:  # the render cache keeps no silhouettes: render them again, a batch at a time
                masks = render_range(data.domain, data.split, i, min(len(data), i + MASK_BATCH), data.size)["mask"]
            xyz, uv_vis = np.zeros((42, 3), dtype=np.float32), np.zeros((42, 3), dtype=np.float32)
            xyz[right] = d["xyz"][k].numpy() / 1000.0
            uv_vis[right, :2] = d["uv"][k].numpy()
            uv_vis[right, 2] = d["visible"][k].numpy()
            anno[i] = {"xyz": xyz, "uv_vis": uv_vis, "K": d["K"][k].numpy().astype(np.float32)}
            _pil(d["image"][k]).save(folder / "color" / f"{i:05d}.png")
            labels = np.where(masks[i % MASK_BATCH].numpy(), rhd.RIGHT_LABELS[0], 0).astype(np.uint8)
            Image.fromarray(labels).save(folder / "mask" / f"{i:05d}.png")
    with (folder / f"anno_{split}.pickle").open("wb") as f:
        pickle.dump(anno, f)


def stb_mirrored_camera() -> np.ndarray:
    """The SK colour camera with its principal point mirrored: a right hand seen by it, flipped, is the
    left hand that STB's loader mirrors back (repro.data.geometry.mirror_x)."""
    K = stb.SK_COLOR_K.copy()
    K[0, 2] = STB_FRAME[0] - 1 - K[0, 2]
    return K


def _in_camera(crop: torch.Tensor, K_crop: torch.Tensor, K: np.ndarray, frame: tuple[int, int]) -> Image.Image:
    """The crop as camera K sees it: pixel u of K shows the ray of crop pixel K_crop K^-1 u (both without
    skew, so an affine map), black where the crop does not reach. PIL maps output to input coordinates
    at pixel edges, ours sit at pixel centres: hence the half pixels."""
    Kc = K_crop.double().numpy()
    ax, ay = Kc[0, 0] / K[0, 0], Kc[1, 1] / K[1, 1]
    cx, cy = Kc[0, 2] + 0.5 - ax * (K[0, 2] + 0.5), Kc[1, 2] + 0.5 - ay * (K[1, 2] + 0.5)
    return _pil(crop).transform(frame, Image.Transform.AFFINE, (ax, 0.0, cx, 0.0, ay, cy), resample=Image.Resampling.BILINEAR)


def _write_stb(data, out: Path, split: str) -> None:
    sequences = stb.SEQUENCES[split]
    if len(data) < len(sequences):
        raise DataError(f"--n {len(data)}: STB's {split} split has {len(sequences)} sequences; export at least one frame each")
    _refuse_existing([p for seq in sequences for p in (out / "labels" / f"{seq}_SK.mat", out / "images" / seq)])
    (out / "labels").mkdir(parents=True, exist_ok=True)
    place = [(seq, f) for seq, frames in zip(sequences, np.array_split(np.arange(len(data)), len(sequences))) for f in range(len(frames))]
    for seq in sequences:
        (out / "images" / seq).mkdir(parents=True)
    K = stb_mirrored_camera()
    to_stb = np.array(stb.STB_TO_CANONICAL)  # STB slot of each canonical joint
    para = {seq: [] for seq in sequences}  # frames are dealt in order: each list fills frame by frame
    for start, d in data.shards():
        for k in range(len(d["image"])):
            seq, f = place[start + k]
            left = d["xyz"][k].double() * torch.tensor([-1.0, 1.0, 1.0])
            left[WRIST] = palm_centre(left)  # STB's slot 0 is the palm centre; its loader derives the wrist
            joints = np.empty((21, 3))
            joints[to_stb] = left.numpy()
            para[seq].append(joints @ stb.SK_ROTATION.T + stb.SK_TRANSLATION)  # colour -> depth camera frame
            image = _in_camera(d["image"][k], d["K"][k], K, STB_FRAME)
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out / "images" / seq / f"SK_color_{f}.png")
    for seq in sequences:
        scipy.io.savemat(out / "labels" / f"{seq}_SK.mat", {"handPara": np.stack(para[seq]).transpose(2, 1, 0)})


Writer = Callable[[object, Path, str], None]
# format -> (render size of the synthetic crops, writer)
FORMATS: dict[str, tuple[int, Writer]] = {
    "freihand": (FREIHAND_SIZE, _write_freihand),
    "rhd": (RHD_SIZE, _write_rhd),
    "stb": (STB_RENDER_SIZE, _write_stb),
}


def export(domain: str, fmt: str, out: Path, n: int | None = None, split: str | None = None) -> str:
    """Write the first n samples (default: all) of `domain`'s split (default: its first) under `out` in
    format `fmt`'s layout; returns the name of the format's split written."""
    from repro.train.data import SPLIT_OF_ROLE  # the one table of which real split plays which role

    if fmt not in FORMATS:
        raise DataError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    spec = get_domain(domain)
    if not spec.labelled:
        raise DataError(f"domain {domain!r} has no pose labels: only labelled domains can be exported")
    split = split or next(iter(spec.splits))
    if split not in spec.splits:
        raise DataError(f"domain {domain!r} has no split {split!r}; expected one of {tuple(spec.splits)}")
    if split not in SPLIT_OF_ROLE[fmt]:
        roles = ", ".join(f"{role} -> {name}" for role, name in SPLIT_OF_ROLE[fmt].items())
        raise DataError(f"{fmt} has no split for a synthetic {split!r} split; export one of its roles ({roles})")
    if n is not None and n <= 0:
        raise DataError(f"--n must be positive, got {n}")
    size, write = FORMATS[fmt]
    target = SPLIT_OF_ROLE[fmt][split]
    write(open_dataset(domain, split=split, n=n, size=size), Path(out), target)
    return target
