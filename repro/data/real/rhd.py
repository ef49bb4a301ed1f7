"""Rendered Hand Pose dataset, RHD_published_v2 (Zimmermann & Brox, ICCV 2017).

Layout under the root (the `RHD_published_v2` folder): `<split>/color/%05d.png` (320x320 RGB),
`<split>/mask/%05d.png` (part labels: 0 background, 1 person, 2-17 left hand, 18-33 right hand) and
`<split>/anno_<split>.pickle`, a dict index -> {'xyz': (42, 3) metres, camera frame; 'uv_vis':
(42, 3) u, v, visible flag; 'K': (3, 3)}. Keypoints 0-20 are the left hand, 21-41 the right hand,
each as: 0 wrist, then per finger thumb, index, middle, ring, little, four keypoints from the TIP to
the base (lmb-freiburg/hand3d README and data/BinaryDbReader.py, where keypoint 0 is the wrist and
the palm is 0.5 * (kp 0 + kp 12)).

Conversions: metres -> millimetres; each finger reversed to base->tip (canonical order); visibility
from the 'uv_vis' flag. One hand per image: the one with more visible keypoints; on a tie, the one
with more mask pixels (labels 2-17 left, 18-33 right); on a tie of both, the right hand.
(hand3d's BinaryDbReader uses the mask count alone; visible keypoints come first here because they
are what the evaluation scores.) A left hand is mirrored into a right hand.

The annotation file is a pickle: only open datasets you trust (it can run code when loaded).
"""

import numbers
import pickle
from pathlib import Path

import numpy as np
import torch

from repro.data.errors import DataError
from repro.data.real.common import RealHandDataset, build_sample, count_files, read_image, require_dir, require_file, require_finite
from repro.data.registry import DEFAULT_SIZE, register_dataset
from repro.data.sample import HandSample

LAYOUT = (
    "RHD_published_v2 layout: <split>/color/%05d.png, <split>/mask/%05d.png, "
    "<split>/anno_<split>.pickle = {index: {'xyz': 42x3 metres, 'uv_vis': 42x3, 'K': 3x3}}"
)
# canonical joint j <- RHD joint RHD_TO_CANONICAL[j] within one hand
RHD_TO_CANONICAL = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)
LEFT_LABELS = (2, 17)  # inclusive ranges of mask labels
RIGHT_LABELS = (18, 33)
HAND_CHOICE = "the hand with more visible keypoints; ties: more mask pixels; then the right hand"
FIELDS = {"xyz": (42, 3), "uv_vis": (42, 3), "K": (3, 3)}


def _load_annotations(path: Path) -> tuple[list[int], dict[str, np.ndarray]]:
    require_file(path, "a pickled dict index -> {'xyz', 'uv_vis', 'K'}", LAYOUT)
    try:
        with path.open("rb") as f:
            # latin1 lets Python 3 read numpy arrays pickled by Python 2 as well
            anno = pickle.load(f, encoding="latin1")
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise DataError(f"cannot read {path} ({type(err).__name__}: {err}) ({LAYOUT})") from None
    # numbers.Integral: numpy integers as well (pickles written from arrays)
    if not isinstance(anno, dict) or not anno or not all(isinstance(k, numbers.Integral) for k in anno):
        raise DataError(f"{path}: expected a non-empty dict with integer sample indices ({LAYOUT})")
    keys = sorted(anno)
    fields = {}
    for field, shape in FIELDS.items():
        rows = []
        for k in keys:
            entry = anno[k]
            if not isinstance(entry, dict) or field not in entry:
                raise DataError(f"{path}: sample {k} has no field {field!r}; expected {LAYOUT}")
            try:
                value = np.asarray(entry[field], dtype=np.float64)
            except (ValueError, TypeError):
                value = np.empty(0)  # not numbers: reported as a wrong shape below
            if value.shape != shape:
                raise DataError(
                    f"{path}: field {field!r} of sample {k} has shape {value.shape}; expected a {shape} array of numbers ({LAYOUT})"
                )
            rows.append(value)
        fields[field] = np.stack(rows)
        require_finite(fields[field], path, field, LAYOUT)
    return keys, fields


class RHD(RealHandDataset):
    name = "rhd"
    layout = LAYOUT

    def __init__(self, root: Path, split: str, n: int | None = None, size: int = DEFAULT_SIZE):
        require_dir(root, "the RHD_published_v2 folder", LAYOUT)
        folder = require_dir(root / split, f"the {split} folder", LAYOUT)
        anno_path = folder / f"anno_{split}.pickle"
        self._keys, fields = _load_annotations(anno_path)
        self._xyz_mm = 1000.0 * fields["xyz"]
        self._visible = fields["uv_vis"][:, :, 2] == 1
        self._K = fields["K"]
        self._color = require_dir(folder / "color", "the folder of %05d.png images", LAYOUT)
        # needed on visibility ties only, but checked now: a run finds out before decoding, not mid-store
        self._mask = require_dir(folder / "mask", "the folder of %05d.png part-label masks", LAYOUT)
        found = count_files(self._color, "*.png")
        if found != len(self._keys):
            raise DataError(
                f"{self._color} holds {found} .png images but {anno_path} has {len(self._keys)} "
                f"annotations; expected one image per annotation ({LAYOUT})"
            )
        super().__init__(root, split, len(self._keys), [anno_path], n, size)

    def _is_left(self, i: int) -> bool:
        n_left, n_right = self._visible[i, :21].sum(), self._visible[i, 21:].sum()
        if n_left != n_right:
            return bool(n_left > n_right)
        path = self._mask / f"{self._keys[i]:05d}.png"
        labels = np.asarray(read_image(path, LAYOUT, mode=None))
        if labels.ndim != 2:
            raise DataError(f"{path}: pixels of shape {labels.shape}; expected a single-channel label mask ({LAYOUT})")
        px_left = np.count_nonzero((labels >= LEFT_LABELS[0]) & (labels <= LEFT_LABELS[1]))
        px_right = np.count_nonzero((labels >= RIGHT_LABELS[0]) & (labels <= RIGHT_LABELS[1]))
        return px_left > px_right

    def _sample(self, i: int) -> HandSample:
        left = self._is_left(i)
        hand = np.array(RHD_TO_CANONICAL) + (0 if left else 21)
        key = self._keys[i]
        return build_sample(
            file=self._color / f"{key:05d}.png",
            xyz_mm=self._xyz_mm[i, hand],
            K=self._K[i],
            visible=self._visible[i, hand],
            left=left,
            meta={"index": key, "hand": "left" if left else "right"},
            size=self.size,
            layout=LAYOUT,
        )

    def pose_groups(self) -> torch.Tensor:
        """(N,) int64: each sample its own pose group (its position in this dataset), for cross-validation
        folds. RHD renders every pose once, so no two samples are versions of one pose."""
        return torch.arange(len(self))


@register_dataset(
    "rhd",
    synthetic=False,
    splits=("training", "evaluation"),
    default_split="evaluation",
    description="Rendered Hand Pose (RHD_published_v2): 41,258 training / 2,728 evaluation, 320x320",
)
def open_rhd(root: Path, split: str, n: int | None, size: int = DEFAULT_SIZE) -> RHD:
    return RHD(root, split, n=n, size=size)
