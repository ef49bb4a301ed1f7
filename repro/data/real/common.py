"""What the real-dataset loaders share: image reading, the hand crop, left->right mirroring, the digest.

Each loader reads its annotations up front, converts them to canonical order and millimetres, and
builds every HandSample lazily through `build_sample`, so the crop rule and the mirroring are the
same for FreiHAND, RHD and STB.
"""

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from repro.data.errors import DataError
from repro.data.geometry import crop_intrinsics, mirror_x, project
from repro.data.sample import HandSample

CROP_MARGIN = 1.5  # crop side = this * the longer side of the projected joints' bounding box
# A crop side over this many times the image's longer side means joints near the camera plane (their
# projections run off to infinity): crop_square's zero-padded canvas would need gigabytes.
MAX_CROP_FACTOR = 8


def require_dir(path: Path, what: str, layout: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; expected {what} ({layout})")
    return path


def require_file(path: Path, what: str, layout: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {what} ({layout})")
    return path


def count_files(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.glob(pattern))


def require_finite(values: np.ndarray, path: Path, field: str, layout: str) -> None:
    """Reject NaN/inf up front, naming the first bad entry, so nothing non-finite reaches a sample."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: field {field!r} of entry {int(np.argmax(bad))} is not finite ({layout})")


def read_image(path: Path, layout: str, mode: str | None = "RGB") -> Image.Image:
    """The image at `path`, fully decoded (so a truncated or corrupt file fails here, by name), as `mode`.

    mode=None keeps the stored values: a label mask's palette indices are its labels.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode) if mode else img.copy()
    except FileNotFoundError:
        raise DataError(f"missing image {path} ({layout})") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"unreadable image {path}: {err} ({layout})") from None


def hand_box(uv: torch.Tensor) -> tuple[float, float, float]:
    """Square crop (x0, y0, side) around the joints: centre = bbox centre, side = CROP_MARGIN * longer side.

    x0, y0 are in geometry.crop_intrinsics' convention, which is also PIL's pixel-edge coordinate of the
    crop's left/top border (PIL pixel i spans [i, i+1]; ours is centred on i).
    """
    lo, hi = uv.min(dim=0).values, uv.max(dim=0).values
    side = CROP_MARGIN * float((hi - lo).max())
    if not side > 0:
        raise ValueError("the joints project to a single point")
    cx, cy = (0.5 * (lo + hi)).tolist()
    return cx - side / 2 + 0.5, cy - side / 2 + 0.5, side


def crop_square(img: Image.Image, x0: float, y0: float, side: float, size: int) -> torch.Tensor:
    """Bilinear resample of the square [x0, x0+side) x [y0, y0+side) to size x size; zeros outside the image.

    Returns uint8 (3, size, size). PIL refuses a box that leaves the image, so the image is first padded
    with zeros as far as the box reaches beyond it.
    """
    width, height = img.size
    pad = math.ceil(max(0.0, -x0, -y0, x0 + side - width, y0 + side - height))
    canvas = Image.new("RGB", (width + 2 * pad, height + 2 * pad))
    canvas.paste(img, (pad, pad))
    box = (x0 + pad, y0 + pad, x0 + pad + side, y0 + pad + side)
    out = canvas.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return torch.from_numpy(np.array(out)).permute(2, 0, 1).contiguous()


def build_sample(
    *, file: Path, xyz_mm: np.ndarray, K: np.ndarray, visible: np.ndarray | None, left: bool, meta: dict, size: int, layout: str
) -> HandSample:
    """Read `file`, mirror a left hand into a right one, crop around the hand, and return the HandSample.

    xyz_mm: (21, 3) canonical order, camera frame of `file`; K: its intrinsics. visible: (21,) or None
    for "inside the image". Mirroring flips the image before cropping and maps x -> -x, cx -> W-1-cx.
    """
    img = read_image(file, layout)
    width, height = img.size
    xyz = torch.as_tensor(xyz_mm, dtype=torch.float64)
    K = torch.as_tensor(K, dtype=torch.float64)
    if not bool((xyz[:, 2] > 0).all()):
        raise DataError(f"{file}: annotation {meta['index']} has joints at z <= 0 (behind the camera) ({layout})")
    uv = project(K, xyz)
    if visible is None:
        visible = ((uv >= 0) & (uv <= torch.tensor([width - 1.0, height - 1.0], dtype=uv.dtype))).all(dim=1)
    if left:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        xyz, uv, K = mirror_x(xyz, uv, K, width)
    try:
        x0, y0, side = hand_box(uv)
    except ValueError as err:
        raise DataError(f"{file}: annotation {meta['index']}: {err} ({layout})") from None
    if side > MAX_CROP_FACTOR * max(width, height):
        raise DataError(
            f"{file}: annotation {meta['index']}: the joints' crop is {side:.0f} px wide, over {MAX_CROP_FACTOR}x the "
            f"{width}x{height} image (joints near the camera plane?); expected a hand near the image ({layout})"
        )
    image = crop_square(img, x0, y0, side, size)
    K_crop = crop_intrinsics(K, x0, y0, size / side).float()
    xyz = xyz.float()
    return HandSample(
        image=image,
        xyz=xyz,
        uv=project(K_crop, xyz),
        visible=torch.as_tensor(visible, dtype=torch.bool),
        K=K_crop,
        caption="",
        meta={"file": str(file), **meta, "mirrored": bool(left)},
    )


# Which samples an n-sample subset of a real split holds (RealHandDataset.source_index). In the digest
# of every subset: subsets of the first n samples (before) are other data.
SUBSET = "evenly-spaced"


def dataset_digest(name: str, split: str, root: Path, files: list[Path], size: int, n: int, subset: str | None = None) -> str:
    """sha256 over what identifies a loaded dataset: name, split, root, annotation files' size+mtime, crop size,
    n and, for a subset of the split, which samples it takes."""
    stats = []
    for path in files:
        try:
            st = path.stat()
        except OSError as err:
            raise DataError(f"cannot stat annotation file {path}: {err}") from None
        stats.append([str(path), st.st_size, st.st_mtime_ns])
    record = {"dataset": name, "split": split, "root": str(root.resolve()), "files": stats, "size": size, "n": n}
    if subset is not None:  # the whole split's digest stays as it was
        record["subset"] = subset
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


class RealHandDataset(Sequence):
    """A real dataset: annotations in memory, images read when an item is asked for.

    Subclasses set `name` and `layout` (the on-disk layout, quoted in every error), read their
    annotations, call `__init__` with the number of samples and the annotation files, and implement
    `_sample(i)`. With n under the split's size it holds n samples evenly spaced over the split: the
    real splits are ordered (FreiHAND's 4 background versions one after another, STB's sequences), so
    their first n samples would be one version or one sequence.
    """

    name = ""
    layout = ""

    def __init__(self, root: Path, split: str, count: int, annotation_files: list[Path], n: int | None, size: int):
        if n is not None and n < 0:
            raise DataError(f"n must be >= 0, got {n}")
        self.root = root
        self.split = split
        self.size = size
        self.annotation_files = annotation_files
        self._count = count
        self._n = count if n is None else min(n, count)

    def __len__(self) -> int:
        return self._n

    def source_index(self, j: int | torch.Tensor) -> int | torch.Tensor:
        """The index in the whole split of this dataset's sample j (0 <= j < len(self); an int64 tensor of
        them gives theirs): the middle of the j-th of n equal stretches of the split (j itself when n is
        the split's size)."""
        return (2 * j + 1) * self._count // (2 * self._n)

    def __getitem__(self, i: int) -> HandSample:
        if not -self._n <= i < self._n:
            raise IndexError(f"{self.name} {self.split}: index {i} out of range for {self._n} samples")
        return self._sample(self.source_index(i % self._n))

    def _sample(self, i: int) -> HandSample:
        raise NotImplementedError

    @property
    def digest(self) -> str:
        subset = SUBSET if self._n < self._count else None
        return dataset_digest(self.name, self.split, self.root, self.annotation_files, self.size, self._n, subset)
