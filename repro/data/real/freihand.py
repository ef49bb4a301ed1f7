"""FreiHAND v2 (Zimmermann et al., ICCV 2019).

Layout under the root: `<split>/rgb/%08d.jpg` (224x224), `<split>_xyz.json` (a list of 21x3 joint
positions in metres, camera frame) and `<split>_K.json` (a list of 3x3 intrinsics). "training" has
32,560 poses, each rendered in 4 background versions (green screen, homogenised, sample, auto), so
its 130,240 images map to annotation `i % 32560` (lmb-freiburg/freihand utils/fh_utils.py,
`sample_version.map_id`); "evaluation" has 3,960 images, one per annotation.

Conversions: metres -> millimetres. The joint order is already canonical (it is FreiHAND's) and all
hands are right hands, so nothing is reordered or mirrored. FreiHAND has no visibility labels: every
joint is marked visible.
"""

import json
from pathlib import Path

import numpy as np
import torch

from repro.data.errors import DataError
from repro.data.real.common import RealHandDataset, build_sample, count_files, require_dir, require_file, require_finite
from repro.data.registry import DEFAULT_SIZE, register_dataset
from repro.data.sample import HandSample

LAYOUT = (
    "FreiHAND v2 layout: training/rgb/%08d.jpg, training_xyz.json, training_K.json, "
    "evaluation/rgb/%08d.jpg, evaluation_xyz.json, evaluation_K.json"
)
VERSIONS = {"training": 4, "evaluation": 1}  # images per annotation
# Where each split's annotations come from: the main archive holds the evaluation images and K but not
# their 3D joints, which ship in a separate archive.
ARCHIVES = {
    "training": "FreiHAND_pub_v2.zip (training_xyz.json, training_K.json beside training/)",
    "evaluation": "FreiHAND_pub_v2_eval.zip, the evaluation annotations published apart from FreiHAND_pub_v2.zip "
    "(evaluation_xyz.json, evaluation_K.json beside evaluation/)",
}


def _load_list(path: Path, tail: tuple[int, ...], what: str) -> np.ndarray:
    require_file(path, what, LAYOUT)
    try:
        data = json.loads(path.read_text())
        array = np.asarray(data, dtype=np.float64)
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise DataError(f"cannot read {path} ({err}); expected {what} ({LAYOUT})") from None
    if array.ndim != 1 + len(tail) or array.shape[1:] != tail or len(array) == 0:
        raise DataError(f"{path}: got an array of shape {array.shape}; expected {what} ({LAYOUT})")
    require_finite(array, path, path.name, LAYOUT)
    return array


class FreiHAND(RealHandDataset):
    name = "freihand"
    layout = LAYOUT

    def __init__(self, root: Path, split: str, n: int | None = None, size: int = DEFAULT_SIZE):
        require_dir(root, "the FreiHAND dataset root", LAYOUT)
        xyz_path, K_path = root / f"{split}_xyz.json", root / f"{split}_K.json"
        missing = [p for p in (xyz_path, K_path) if not p.is_file()]
        if missing:  # refused before any image is read: every sample needs its 3D joints and K
            raise DataError(
                f"{missing[0]}: no such file; FreiHAND {split} annotations missing: {', '.join(map(str, missing))}; "
                f"add them from {ARCHIVES[split]} ({LAYOUT})"
            )
        self._xyz_mm = 1000.0 * _load_list(xyz_path, (21, 3), "a list of N entries of 21x3 metres")
        self._K = _load_list(K_path, (3, 3), "a list of N entries of 3x3 intrinsics")
        if len(self._xyz_mm) != len(self._K):
            raise DataError(
                f"{xyz_path} has {len(self._xyz_mm)} entries but {K_path} has {len(self._K)}; expected one K per pose ({LAYOUT})"
            )
        self._rgb = require_dir(root / split / "rgb", "the folder of %08d.jpg images", LAYOUT)
        count = VERSIONS[split] * len(self._K)
        found = count_files(self._rgb, "*.jpg")
        if found != count:
            raise DataError(
                f"{self._rgb} holds {found} .jpg images; expected {count} = {VERSIONS[split]} x "
                f"{len(self._K)} annotations in {xyz_path} ({LAYOUT})"
            )
        super().__init__(root, split, count, [xyz_path, K_path], n, size)

    def _sample(self, i: int) -> HandSample:
        pose = i % len(self._K)
        return build_sample(
            file=self._rgb / f"{i:08d}.jpg",
            xyz_mm=self._xyz_mm[pose],
            K=self._K[pose],
            visible=np.ones(21, dtype=bool),
            left=False,
            meta={"index": i, "annotation": pose},
            size=self.size,
            layout=LAYOUT,
        )

    def pose_groups(self) -> torch.Tensor:
        """(N,) int64: each sample's pose, the annotation of its index in the split (% #annotations), so that
        cross-validation keeps a pose's background versions in one fold."""
        return self.source_index(torch.arange(len(self))) % len(self._K)


@register_dataset(
    "freihand",
    synthetic=False,
    splits=tuple(VERSIONS),
    default_split="evaluation",
    description="FreiHAND v2: 130,240 training / 3,960 evaluation images, right hands, 224x224",
)
def open_freihand(root: Path, split: str, n: int | None, size: int = DEFAULT_SIZE) -> FreiHAND:
    return FreiHAND(root, split, n=n, size=size)
