"""Stereo Hand Pose Tracking Benchmark, STB (Zhang et al., ICIP 2017), the Intel RealSense (SK) colour images.

Layout under the root: `labels/<seq>_SK.mat` holding `handPara`, shape (3, 21, frames), millimetres,
and `images/<seq>/SK_color_%d.png` (640x480; `<seq>/SK_color_%d.png` directly under the root is
accepted too, as some unpacked copies have it). Splits: "test" = B1Counting + B1Random (2 x 1,500),
"train" = B2..B6 Counting + Random (as in lixiny/bihand and Liuhao Ge's hand_shape_pose loaders).

Conversions, as in those loaders and lmb-freiburg/hand3d's data/BinaryDbReaderSTB.py:
- Frame: the SK labels are in the RealSense depth camera's frame. STB's readme gives the SK rotation
  vector r = (0.00531, -0.01196, 0.00301) and translation t = (-24.0381, -0.4563, -1.2326) mm that take
  colour-camera coordinates to depth-camera ones, p_d = R(r) p_c + t, so p_c = R^T (p_d - t).
  The colour intrinsics are fx 607.92271, fy 607.88192, cx 314.78337, cy 236.42484.
- Order: STB's joint 0 is the palm centre, then little, ring, middle, index, thumb, each from the
  base (MCP) to the tip (hand3d maps STB 20 -> thumb tip, 17 -> thumb MCP; bihand/Ge name them
  `loc_bn_<finger>_L_01..04` with _01 the MCP). Reordered to canonical.
- Wrist: STB has none. wrist = 2 * palm - middle MCP, the inverse of this suite's evaluation root
  (palm = midpoint of wrist and middle MCP), so the root of a converted hand is STB's own palm.
  (hand3d and Ge use the ring MCP instead: wrist = 2 * palm - ring MCP.)
- Hand side: every STB hand is the subject's left hand (hand3d: "this dataset only contains left
  hands"; joint names end in _L), so every sample is mirrored into a right hand.
- Visibility: STB has no labels; a joint is visible when it projects inside the image.
"""

from pathlib import Path

import numpy as np
import scipy.io
import torch
from scipy.spatial.transform import Rotation

from repro.data.errors import DataError
from repro.data.joints import MIDDLE_MCP, WRIST
from repro.data.real.common import RealHandDataset, build_sample, count_files, require_dir, require_file, require_finite
from repro.data.registry import DEFAULT_SIZE, register_dataset
from repro.data.sample import HandSample

LAYOUT = "STB layout: labels/<seq>_SK.mat with handPara (3, 21, frames) in mm, images/<seq>/SK_color_%d.png"
SEQUENCES = {
    "test": ("B1Counting", "B1Random"),
    "train": tuple(f"B{b}{kind}" for b in range(2, 7) for kind in ("Counting", "Random")),
}
WRIST_RULE = "wrist = 2 * palm - middle MCP (STB's palm stays the root; hand3d uses the ring MCP)"
SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
SK_ROTATION = Rotation.from_rotvec([0.00531, -0.01196, 0.00301]).as_matrix()
SK_TRANSLATION = np.array([-24.0381, -0.4563, -1.2326])  # mm
# canonical joint j <- STB joint STB_TO_CANONICAL[j]; canonical 0 (wrist) starts as STB's palm
STB_TO_CANONICAL = (0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4)


def depth_to_color(xyz: np.ndarray) -> np.ndarray:
    """SK depth-camera frame -> SK colour-camera frame, (..., 3) mm: p_c = R^T (p_d - t), as row vectors."""
    return (xyz - SK_TRANSLATION) @ SK_ROTATION


def palm_to_wrist(xyz: np.ndarray) -> np.ndarray:
    """Canonical-order joints whose slot 0 holds the palm centre -> slot 0 holds wrist = 2 palm - middle MCP."""
    xyz = xyz.copy()
    xyz[..., WRIST, :] = 2.0 * xyz[..., WRIST, :] - xyz[..., MIDDLE_MCP, :]
    return xyz


def _load_sequence(path: Path) -> np.ndarray:
    """handPara of one sequence as canonical (frames, 21, 3) mm in the colour-camera frame."""
    require_file(path, "a .mat file with handPara (3, 21, frames) in mm", LAYOUT)
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several unrelated types for a corrupt file
        raise DataError(f"cannot read {path} ({type(err).__name__}: {err}) ({LAYOUT})") from None
    if "handPara" not in mat:
        raise DataError(f"{path}: no field 'handPara'; expected handPara (3, 21, frames) in mm ({LAYOUT})")
    para = np.asarray(mat["handPara"], dtype=np.float64)
    if para.ndim != 3 or para.shape[:2] != (3, 21) or para.shape[2] == 0:
        raise DataError(f"{path}: field 'handPara' has shape {para.shape}; expected (3, 21, frames) in mm ({LAYOUT})")
    xyz = para.transpose(2, 1, 0)  # (frames, 21, 3)
    require_finite(xyz, path, "handPara", LAYOUT)
    return palm_to_wrist(depth_to_color(xyz)[:, STB_TO_CANONICAL])


class STB(RealHandDataset):
    name = "stb"
    layout = LAYOUT

    def __init__(self, root: Path, split: str, n: int | None = None, size: int = DEFAULT_SIZE):
        require_dir(root, "the STB dataset root", LAYOUT)
        files, poses, self._frames = [], [], []
        for seq in SEQUENCES[split]:
            label = root / "labels" / f"{seq}_SK.mat"
            xyz = _load_sequence(label)
            folder = root / "images" / seq
            if not folder.is_dir() and (root / seq).is_dir():
                folder = root / seq
            require_dir(folder, f"the folder of {seq}'s SK_color_%d.png images (or {root / seq})", LAYOUT)
            found = count_files(folder, "SK_color_*.png")
            if found != len(xyz):
                raise DataError(
                    f"{folder} holds {found} SK_color_*.png images but {label} has {len(xyz)} "
                    f"frames; expected one image per frame ({LAYOUT})"
                )
            files.append(label)
            poses.append(xyz)
            self._frames += [(seq, folder, f) for f in range(len(xyz))]
        self._xyz_mm = np.concatenate(poses)
        super().__init__(root, split, len(self._frames), files, n, size)

    def _sample(self, i: int) -> HandSample:
        seq, folder, frame = self._frames[i]
        return build_sample(
            file=folder / f"SK_color_{frame}.png",
            xyz_mm=self._xyz_mm[i],
            K=SK_COLOR_K,
            visible=None,
            left=True,
            meta={"index": frame, "sequence": seq},
            size=self.size,
            layout=LAYOUT,
        )

    def pose_groups(self) -> torch.Tensor:
        """(N,) int64: each sample its own pose group (its position in this dataset), for cross-validation
        folds. The frames of a sequence are successive video frames, not re-renders of one annotated
        pose, so they are not grouped (neighbouring frames are similar, yet each has its own label)."""
        return torch.arange(len(self))


@register_dataset(
    "stb",
    synthetic=False,
    splits=tuple(SEQUENCES),
    default_split="test",
    description="Stereo Hand Pose benchmark, SK colour: 15,000 train / 3,000 test, left hands, 640x480",
)
def open_stb(root: Path, split: str, n: int | None, size: int = DEFAULT_SIZE) -> STB:
    return STB(root, split, n=n, size=size)
