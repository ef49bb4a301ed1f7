"""Write tiny FreiHAND, RHD and STB datasets in their real on-disk formats, with known joints and markers.

Each writer returns what it wrote in canonical order, millimetres, camera frame of the image, so the
tests can work out the expected samples by hand. The datasets' own joint orders are built here from
joint names, not from the loaders' index tables, so a wrong table in a loader shows up.
Every image is a flat background with one red square under a chosen joint (MARKED_JOINT).
"""

import json
import pickle

import numpy as np
import scipy.io
from PIL import Image

from repro.data.joints import FINGERS, JOINT_NAMES

BACKGROUND = (40, 90, 160)
MARKER = (255, 0, 0)
MARKER_HALF = 4  # markers are 9x9 px squares

# Per finger: base joint relative to the wrist (mm), direction, segment lengths (mm).
_FINGER_GEOMETRY = {
    "thumb": ((20, -15, -5), (0.6, -0.78, -0.1), (35, 32, 28)),
    "index": ((25, -80, 0), (0.1, -1, -0.05), (40, 25, 20)),
    "middle": ((5, -85, 0), (0, -1, -0.05), (45, 28, 22)),
    "ring": ((-14, -80, 2), (-0.08, -1, -0.05), (42, 26, 21)),
    "little": ((-30, -70, 4), (-0.18, -1, -0.05), (32, 20, 18)),
}


def _parts(finger: str) -> tuple[str, ...]:
    return ("cmc", "mcp", "ip", "tip") if finger == "thumb" else ("mcp", "pip", "dip", "tip")


def right_hand_mm(wrist) -> np.ndarray:
    """A right hand, palm to the camera, fingers up (-y): (21, 3) canonical order, mm."""
    joints = {"wrist": np.zeros(3)}
    for finger, (base, direction, lengths) in _FINGER_GEOMETRY.items():
        d = np.array(direction, dtype=float) / np.linalg.norm(direction)
        p = np.array(base, dtype=float)
        names = [f"{finger}_{part}" for part in _parts(finger)]
        joints[names[0]] = p
        for name, length in zip(names[1:], lengths):
            p = p + length * d
            joints[name] = p
    return np.stack([joints[name] for name in JOINT_NAMES]) + np.asarray(wrist, dtype=float)


def left_hand_mm(wrist) -> np.ndarray:
    """The mirror image of right_hand_mm: a left hand, (21, 3) canonical order, mm."""
    return right_hand_mm((0, 0, 0)) * np.array([-1.0, 1.0, 1.0]) + np.asarray(wrist, dtype=float)


def project(K: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    p = xyz @ K.T
    return p[:, :2] / p[:, 2:]


def leftmost_joint(K: np.ndarray, xyz_mm: np.ndarray) -> int:
    return int(np.argmin(project(K, xyz_mm)[:, 0]))


def reorder(xyz: np.ndarray, names: list[str], palm: np.ndarray | None = None) -> np.ndarray:
    """Canonical-order rows -> rows in the order `names` ('palm' -> the given palm position)."""
    return np.stack([palm if name == "palm" else xyz[JOINT_NAMES.index(name)] for name in names])


# RHD, per hand: wrist, then each finger from the tip to the base (hand3d README).
RHD_NAMES = ["wrist"] + [f"{f}_{part}" for f in FINGERS for part in reversed(_parts(f))]
# STB: palm centre, then little, ring, middle, index, thumb, each from the base to the tip.
STB_NAMES = ["palm"] + [f"{f}_{part}" for f in reversed(FINGERS) for part in _parts(f)]


def draw(width: int, height: int, marker_uv) -> Image.Image:
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    u, v = (int(round(c)) for c in marker_uv)
    pixels[max(v - MARKER_HALF, 0) : v + MARKER_HALF + 1, max(u - MARKER_HALF, 0) : u + MARKER_HALF + 1] = MARKER
    return Image.fromarray(pixels)


def write_freihand(root) -> dict:
    """FreiHAND v2: training = 2 poses x 4 versions (8 images), evaluation = 2 poses. Right hands."""
    K = np.array([[380.0, 0.0, 111.5], [0.0, 380.0, 111.5], [0.0, 0.0, 1.0]])
    poses = {
        "training": [right_hand_mm((0, 70, 550)), right_hand_mm((20, 60, 600))],
        "evaluation": [right_hand_mm((-10, 75, 560)), right_hand_mm((5, 65, 580))],
    }
    versions = {"training": 4, "evaluation": 1}
    for split, xyz in poses.items():
        (root / f"{split}_xyz.json").write_text(json.dumps([(p / 1000.0).tolist() for p in xyz]))
        (root / f"{split}_K.json").write_text(json.dumps([K.tolist()] * len(xyz)))
        rgb = root / split / "rgb"
        rgb.mkdir(parents=True)
        for i in range(versions[split] * len(xyz)):
            pose = xyz[i % len(xyz)]
            marker = project(K, pose)[leftmost_joint(K, pose)]
            draw(224, 224, marker).save(rgb / f"{i:08d}.jpg", quality=95)
    return {"K": K, "xyz_mm": poses}


def write_rhd(root) -> dict:
    """RHD_published_v2/evaluation with 3 samples, hand choice by: 0 visibility (left, though the mask
    favours the right), 1 visibility (right), 2 a visibility tie broken by the mask (left)."""
    folder = root / "evaluation"
    for sub in ("color", "mask"):
        (folder / sub).mkdir(parents=True)
    everything = np.ones(21, dtype=bool)
    right_visible = everything.copy()
    right_visible[[JOINT_NAMES.index("thumb_tip"), JOINT_NAMES.index("little_tip")]] = False
    samples = [
        # (left hand, right hand, left visible, right visible, left mask px, right mask px, fx)
        (left_hand_mm((-70, 60, 700)), right_hand_mm((120, 60, 700)), everything, _first(5), 100, 400, 300.0),
        (left_hand_mm((-150, 60, 700)), right_hand_mm((40, 60, 650)), _first(3), right_visible, 500, 100, 310.0),
        (left_hand_mm((-60, 50, 650)), right_hand_mm((130, 60, 700)), _first(10), _first(10), 300, 100, 290.0),
    ]
    anno, written = {}, []
    for i, (left, right, vis_l, vis_r, px_l, px_r, fx) in enumerate(samples):
        K = np.array([[fx, 0.0, 160.0], [0.0, fx, 160.0], [0.0, 0.0, 1.0]])
        xyz = np.concatenate([reorder(left, RHD_NAMES), reorder(right, RHD_NAMES)])
        vis = np.concatenate([reorder(vis_l[:, None], RHD_NAMES), reorder(vis_r[:, None], RHD_NAMES)])[:, 0]
        uv_vis = np.concatenate([project(K, xyz), vis[:, None].astype(np.float64)], axis=1)
        anno[i] = {"xyz": (xyz / 1000.0).astype(np.float32), "uv_vis": uv_vis.astype(np.float32), "K": K.astype(np.float32)}
        chosen = left if i != 1 else right
        draw(320, 320, project(K, chosen)[leftmost_joint(K, chosen)]).save(folder / "color" / f"{i:05d}.png")
        labels = np.zeros(320 * 320, dtype=np.uint8)
        labels[:1000] = 1  # the person's body: neither hand
        labels[1000 : 1000 + px_l] = 5
        labels[2000 : 2000 + px_r] = 20
        Image.fromarray(labels.reshape(320, 320), mode="L").save(folder / "mask" / f"{i:05d}.png")
        written.append({"K": K, "left": left, "right": right, "visible_left": vis_l, "visible_right": vis_r})
    with (folder / "anno_evaluation.pickle").open("wb") as f:
        pickle.dump(anno, f)
    return {"samples": written}


def _first(k: int) -> np.ndarray:
    visible = np.zeros(21, dtype=bool)
    visible[:k] = True
    return visible


def rodrigues(rotvec) -> np.ndarray:
    """Rotation matrix of a rotation vector: cos t I + (1 - cos t) k k^T + sin t [k]x."""
    rotvec = np.asarray(rotvec, dtype=float)
    theta = np.linalg.norm(rotvec)
    k = rotvec / theta
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.cos(theta) * np.eye(3) + (1 - np.cos(theta)) * np.outer(k, k) + np.sin(theta) * cross


STB_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
STB_R = rodrigues([0.00531, -0.01196, 0.00301])
STB_T = np.array([-24.0381, -0.4563, -1.2326])


def write_stb(root) -> dict:
    """STB test split: B1Counting with 2 frames, B1Random with 1 frame whose hand leaves the image on the
    right. Left hands; labels in the depth camera frame (p_d = R p_c + t), images/<seq>/SK_color_%d.png."""
    hands = {
        "B1Counting": [left_hand_mm((-40, 110, 450)), left_hand_mm((10, 100, 480))],
        "B1Random": [left_hand_mm((230, 100, 450))],
    }
    (root / "labels").mkdir(parents=True)
    for seq, frames in hands.items():
        folder = root / "images" / seq
        folder.mkdir(parents=True)
        para = []
        for f, hand in enumerate(frames):
            palm = 0.5 * (hand[JOINT_NAMES.index("wrist")] + hand[JOINT_NAMES.index("middle_mcp")])
            stb_color = reorder(hand, STB_NAMES, palm=palm)
            para.append(stb_color @ STB_R.T + STB_T)
            draw(640, 480, project(STB_K, hand)[leftmost_joint(STB_K, hand)]).save(folder / f"SK_color_{f}.png")
            draw(640, 480, (0, 0)).save(folder / f"SK_depth_{f}.png")  # the other files in a sequence folder
        scipy.io.savemat(root / "labels" / f"{seq}_SK.mat", {"handPara": np.stack(para).transpose(2, 1, 0)})
    return {"K": STB_K, "hands": hands}
