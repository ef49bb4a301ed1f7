"""One synthetic sample: draw its parameters (a pure function of a seed), then render batches of them.

`draw_scene(domain, rng)` returns plain numbers and words; `render_scenes(scenes, size)` turns a list
of them into images, 3D joints, crop intrinsics and visibility. Rendering is elementwise per sample,
so a sample's pixels do not depend on which batch it is rendered in.
"""

import numpy as np
import torch

from repro.data.geometry import crop_intrinsics, project
from repro.data.joints import BONES, palm_centre
from repro.data.world.backdrops import TEXTURES
from repro.data.world.hand import (
    BONE_RADII,
    CARPUS,
    FINGERTIP_INSET,
    PALM_ELLIPSOID,
    PALM_LENGTH,
    PALM_THICKNESS,
    PALM_WIDTH,
    THENAR,
    WRIST_RADIUS,
    hand_joints,
    sample_hand,
    stack_params,
)
from repro.data.world.render import HandGeometry, pixel_rays, rasterize
from repro.data.world.style import COLOUR_RGB, HAND_RGB, LIGHTING
from repro.data.world.vocabulary import HANDS, HEADS, LIGHTING_WORDS, PLAIN_COLOURS, caption

ORIGINAL_CENTRE = (320.0, 240.0)  # principal point of the 640x480 camera the crop is cut from
CROP_MARGIN = (1.35, 1.7)  # crop side / joints' bounding-box side
FOREARM = (55.0, 22.0, 25.0)  # length, radius at the wrist and at the far end (mm) of the forearm stub below the wrist
VISIBILITY_SLACK = 1.0  # a joint is visible if the first surface on its ray lies within (1 + slack) r of it


def draw_scene(domain, rng: np.random.Generator, version: int = 0, background_rng: np.random.Generator | None = None) -> dict:
    """All random choices for one sample, in a fixed order of draws.

    Everything but the background (hand shape and pose, camera, crop, hand colour, lighting, sensor
    noise, caption words) comes from `rng`; the background (backdrop, its texture and colours, scene,
    room) from `background_rng`, by default `rng` after the rest. Scenes drawn with one `rng` seed and
    different `background_rng`s are one pose on different backgrounds: a domain's versions. Version 0
    draws its backdrop from `domain.backdrops`, later versions from `domain.replaced_backdrops`."""
    choice = lambda r, options: options[int(r.integers(len(options)))]  # noqa: E731
    scene = {
        "hand": sample_hand(rng),
        "azimuth": rng.uniform(*domain.azimuth),
        "elevation": rng.uniform(*domain.elevation),
        "roll": rng.uniform(*domain.roll),
        "distance": rng.uniform(*domain.distance_mm),
        "off_axis": rng.uniform(-domain.off_axis_deg, domain.off_axis_deg, size=2),
        "focal": rng.uniform(*domain.focal_px),
        "crop_margin": rng.uniform(*CROP_MARGIN),
        "crop_shift": rng.uniform(-0.08, 0.08, size=2),
        "hand_colour": choice(rng, domain.hand_colours),
        "albedo_jitter": rng.uniform(0.94, 1.06, size=3),
        "lighting": choice(rng, domain.lighting),
        "light_dir": rng.uniform([-0.8, -0.9, -1.0], [0.8, 0.3, -1.0]),
        "noise_seed": int(rng.integers(2**31)),
        "noise_sigma": rng.uniform(*domain.sensor_noise),
        "blur": rng.uniform(*domain.blur),
        "head": choice(rng, HEADS),
        "hand_word": choice(rng, HANDS),
        "slot_is_lighting": bool(rng.uniform() < 0.5),
    }
    bg = rng if background_rng is None else background_rng
    backdrops = domain.backdrops if version == 0 else domain.replaced_backdrops
    scenes = domain.replaced_scenes if version > 0 and domain.replaced_scenes else domain.scenes
    backdrop = choice(bg, backdrops)
    scene.update(draw_background(backdrop, choice(bg, scenes), bg, domain.replaced_texture if version > 0 else None))
    scene.update(draw_recolouring(domain, bg) if version > 0 else NEUTRAL_RECOLOURING)
    scene["caption"] = scene_caption(scene)
    return scene


# A render as drawn: no change of exposure or white balance, the hand in its own colour.
NEUTRAL_RECOLOURING = {"exposure": 1.0, "white_balance": (1.0, 1.0, 1.0), "hand_tint": 0.0}


def draw_recolouring(domain, rng: np.random.Generator) -> dict:
    """How a replaced version's composite is recoloured (DomainSpec.replaced_exposure and after)."""
    wb = domain.replaced_white_balance
    return {
        "exposure": rng.uniform(*domain.replaced_exposure),
        "white_balance": tuple(rng.uniform(1 - wb, 1 + wb, size=3)),
        "hand_tint": rng.uniform(*domain.replaced_tint),
    }


def draw_background(backdrop: str, scene_word: str, rng: np.random.Generator, texture: str | None = None) -> dict:
    """The random parts of a background, given its backdrop word and scene ("background" or "room");
    `texture` replaces the word's own texture (world.backdrops.TEXTURES), in a colour near the word's."""
    others = [c for c in PLAIN_COLOURS if c != backdrop]
    choice = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    return {
        "backdrop": backdrop,
        "texture": texture or backdrop,
        "backdrop_params": rng.uniform(size=8),
        "base_rgb": _photo_colour(backdrop, rng) if texture else COLOUR_RGB.get(backdrop) or COLOUR_RGB[choice(others)],
        "second_rgb": COLOUR_RGB[choice(others)],
        "scene": scene_word,
        "wall_behind": rng.uniform(150.0, 600.0),
        "floor_below": rng.uniform(40.0, 220.0),
        "floor_rgb": rng.uniform([0.35, 0.25, 0.15], [0.75, 0.65, 0.55]),
    }


def _photo_colour(word: str, rng: np.random.Generator) -> tuple:
    """A replaced background's dominant colour: the word's, moved by up to 0.5 per channel."""
    return tuple(np.clip(np.array(COLOUR_RGB[word]) + rng.uniform(-0.5, 0.5, size=3), 0.0, 1.0))


def scene_caption(scene: dict) -> str:
    """The caption naming a scene's style in the paper's grammar; its slot names the lighting or the backdrop."""
    lighting = scene["lighting"]
    slot = lighting if (lighting in LIGHTING_WORDS and scene["slot_is_lighting"]) else scene["backdrop"]
    return caption(scene["head"], scene["hand_colour"], scene["hand_word"], slot, scene["scene"])


def restyle_scene(scene: dict, style: dict, rng: np.random.Generator) -> dict:
    """`scene` in another style: the same hand, pose, camera, crop, light direction, sensor noise and blur,
    with `style`'s hand colour and lighting, and a background of its backdrop and scene drawn from `rng`,
    rendered as drawn (NEUTRAL_RECOLOURING)."""
    out = dict(scene, hand_colour=style["hand_colour"], lighting=style["lighting"], **NEUTRAL_RECOLOURING)
    out.update(draw_background(style["backdrop"], style["scene"], rng))
    out["caption"] = scene_caption(out)
    return out


def _tensor(scenes, key):
    return torch.tensor(np.array([s[key] for s in scenes], dtype=np.float32))


def _rotation(scenes) -> torch.Tensor:
    """Hand frame -> camera frame: palm towards the camera, fingers up, then azimuth, elevation, roll."""
    base = torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])
    az, el, ro = (torch.deg2rad(_tensor(scenes, k)) for k in ("azimuth", "elevation", "roll"))

    def about(axis, angle):
        c, s = torch.cos(angle), torch.sin(angle)
        one, zero = torch.ones_like(c), torch.zeros_like(c)
        rows = {
            0: [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            1: [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            2: [[c, -s, zero], [s, c, zero], [zero, zero, one]],
        }[axis]
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    return about(2, ro) @ about(0, el) @ about(1, az) @ base


def _geometry(joints_hand, R, t, hand_params) -> tuple[torch.Tensor, HandGeometry]:
    """The hand's primitives, built in the hand frame, then moved into the camera's: a capsule per bone
    tapering from its parent joint's flesh radius to its child's (fingertips stop FINGERTIP_INSET r short
    of the tip keypoints), the forearm, and ellipsoids for the palm and the thenar eminence."""
    s = hand_params.scale
    xyz = joints_hand @ R.transpose(1, 2) + t[:, None]
    parents, children = (list(x) for x in zip(*BONES))
    radius = torch.tensor((WRIST_RADIUS,) + BONE_RADII)[None] * s[:, None]  # (B, 21) at each joint
    a, b = joints_hand[:, parents], joints_hand[:, children].clone()
    r, r_end = radius[:, parents], radius[:, children]
    # The palm's metacarpals start spread over the carpus rather than at the wrist point.
    a[:, 4::4] = b[:, 4::4] * torch.tensor([CARPUS[0], CARPUS[1], 1.0])
    r[:, 4::4] = CARPUS[2] * s[:, None]
    distal = b[:, 3::4] - a[:, 3::4]  # every digit's last bone ends at its tip
    b[:, 3::4] -= FINGERTIP_INSET * r_end[:, 3::4, None] * torch.nn.functional.normalize(distal, dim=-1)
    down = torch.tensor([0.0, -FOREARM[0], 0.0]) * s[:, None]
    a = torch.cat([a, joints_hand[:, :1]], 1) @ R.transpose(1, 2) + t[:, None]
    b = torch.cat([b, joints_hand[:, :1] + down[:, None]], 1) @ R.transpose(1, 2) + t[:, None]
    r = torch.cat([r, FOREARM[1] * s[:, None]], 1)
    r_end = torch.cat([r_end, FOREARM[2] * s[:, None]], 1)

    # Palm: PALM_THICKNESS thick (hand thickness at the metacarpals), as wide as the knuckles, shifted
    # to the little finger's side and a little to the palm's (the palmar pad is thicker than the back).
    width = PALM_WIDTH * hand_params.palm_width * s
    eye = torch.eye(3).expand(len(s), 3, 3)
    palm = (
        torch.stack([PALM_ELLIPSOID[0] * width, PALM_ELLIPSOID[1] * PALM_LENGTH * s, PALM_ELLIPSOID[2] * s], -1),
        torch.stack([PALM_ELLIPSOID[3] * width + 6.0 * s, PALM_ELLIPSOID[4] * PALM_LENGTH * s, 0.5 * PALM_THICKNESS * s], -1),
        eye,
    )
    # Thenar eminence: the muscle mound along the thumb's metacarpal, on its palm side and towards the
    # palm's centre; it turns with the metacarpal (its axes: the bone, across it in the palm, the normal).
    cmc, mcp = joints_hand[:, 1], joints_hand[:, 2]
    along = torch.nn.functional.normalize(mcp - cmc, dim=-1)
    normal = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 1.0]) - along[:, 2:] * along, dim=-1)
    across = torch.cross(normal, along, dim=-1)
    across = torch.where(((palm[0] - cmc) * across).sum(-1, keepdim=True) >= 0, across, -across)  # towards the palm
    bone = (mcp - cmc).norm(dim=-1, keepdim=True)
    lengths = torch.stack([0.5 * bone[:, 0], THENAR[0] * s, THENAR[1] * s], -1)
    centre = cmc + 0.45 * (mcp - cmc) + THENAR[2] * s[:, None] * across + THENAR[3] * s[:, None] * normal
    thenar = (centre, lengths, torch.stack([along, across, normal], 1))
    centres, axes, frames = (torch.stack(x, 1) for x in zip(palm, thenar))  # (B, E, ...)
    to_unit = torch.diag_embed(1.0 / axes) @ frames @ R.transpose(1, 2)[:, None]
    centres = centres @ R.transpose(1, 2) + t[:, None]
    return xyz, HandGeometry(a, b, r, r_end, centres, to_unit)


def _placement(scenes, R, joints_hand) -> torch.Tensor:
    """Translation that puts the palm centre at the drawn distance and off-axis angles."""
    off = torch.deg2rad(_tensor(scenes, "off_axis"))
    direction = torch.nn.functional.normalize(
        torch.stack([torch.tan(off[:, 0]), torch.tan(off[:, 1]), torch.ones(len(scenes))], -1), dim=-1
    )
    target = direction * _tensor(scenes, "distance")[:, None]
    return target - (R @ palm_centre(joints_hand)[..., None])[..., 0]


def _crop_camera(scenes, xyz, size) -> torch.Tensor:
    """Cut a square crop around the projected joints out of the original camera, resized to `size`."""
    B = len(scenes)
    K0 = torch.zeros(B, 3, 3)
    K0[:, 0, 0] = K0[:, 1, 1] = _tensor(scenes, "focal")
    K0[:, 0, 2], K0[:, 1, 2], K0[:, 2, 2] = ORIGINAL_CENTRE[0], ORIGINAL_CENTRE[1], 1.0
    uv = project(K0, xyz)
    lo, hi = uv.min(1).values, uv.max(1).values
    side = (hi - lo).max(-1).values * _tensor(scenes, "crop_margin")
    centre = 0.5 * (lo + hi) + _tensor(scenes, "crop_shift") * side[:, None]
    corner = centre - side[:, None] / 2
    return crop_intrinsics(K0, corner[:, 0], corner[:, 1], size / side)


def _lambert(normal, light, ambient, diffuse):
    return ambient + diffuse * (normal * light).sum(-1).clamp_min(0)


def _backdrop(scenes, K, light, ambient, diffuse, gain, size) -> torch.Tensor:
    """Flat backdrops fill the frame; rooms are a textured back wall and a checked floor, ray-cast.
    The room geometry is computed for the room samples only (elementwise, so no sample's pixels change)."""
    B = len(scenes)
    px = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    flat_y, flat_x = torch.meshgrid(px, px, indexing="ij")
    X, Y = flat_x.expand(B, size, size).clone(), flat_y.expand(B, size, size).clone()
    room_index = [i for i, s in enumerate(scenes) if s["scene"] == "room"]
    room, rooms = torch.tensor(room_index, dtype=torch.long), [scenes[i] for i in room_index]
    if rooms:
        # Room planes in the camera frame (y down): wall z = Zw facing the camera, floor y = Yf facing up.
        r = pixel_rays(K[room], size)
        z_wall = _tensor(rooms, "distance") + _tensor(rooms, "wall_behind")
        y_floor = _tensor(rooms, "floor_below") + _tensor(rooms, "distance") * torch.tan(torch.deg2rad(_tensor(rooms, "off_axis")[:, 1]))
        t_wall = z_wall[:, None, None] / r[..., 2]
        t_floor = torch.where(r[..., 1] > 1e-6, y_floor[:, None, None] / r[..., 1].clamp_min(1e-6), float("inf"))
        on_floor = t_floor < t_wall
        hit = r * torch.minimum(t_wall, t_floor)[..., None]
        X.index_copy_(0, room, hit[..., 0] / 400.0)
        Y.index_copy_(0, room, hit[..., 1] / 400.0)

    params, base, second = _tensor(scenes, "backdrop_params"), _tensor(scenes, "base_rgb"), _tensor(scenes, "second_rgb")
    out = torch.empty(B, 3, size, size)
    for word in sorted({s["texture"] for s in scenes}):
        idx = torch.tensor([i for i, s in enumerate(scenes) if s["texture"] == word])
        out.index_copy_(0, idx, TEXTURES[word](*(x.index_select(0, idx) for x in (X, Y, params, base, second))))

    if rooms:
        checker = ((torch.floor(hit[..., 0] / 250.0) + torch.floor(hit[..., 2] / 250.0)) % 2)[:, None]
        floor = _tensor(rooms, "floor_rgb")[..., None, None] * (0.85 + 0.15 * checker)
        # Room planes are lit like the hand; normalised so that a wall lit head-on keeps its named colour.
        a, d, lit = ambient[room, None, None], diffuse[room, None, None], light[room, None, None]
        wall_shade = _lambert(torch.tensor([0.0, 0.0, -1.0]), lit, a, d) / (a + d * 0.8)
        floor_shade = _lambert(torch.tensor([0.0, -1.0, 0.0]), lit, a, d) / (a + d * 0.8)
        out.index_copy_(
            0, room, torch.where(on_floor[:, None], floor * floor_shade[:, None], out.index_select(0, room) * wall_shade[:, None])
        )
    return out.mul_(gain[:, None, None, None])


def render_scenes(scenes: list[dict], size: int) -> dict:
    """Render drawn scenes at size x size: image uint8 (B,3,S,S), xyz (B,21,3) mm, uv, visible, K, mask."""
    hand_params = stack_params([s["hand"] for s in scenes])
    joints_hand = hand_joints(hand_params)
    R = _rotation(scenes)
    t = _placement(scenes, R, joints_hand)
    xyz, geom = _geometry(joints_hand, R, t, hand_params)
    K = _crop_camera(scenes, xyz, size)
    raster = rasterize(geom, K, size)

    light_table = torch.tensor([LIGHTING[s["lighting"]] for s in scenes])
    ambient, diffuse, gain = light_table[:, 0], light_table[:, 1], light_table[:, 2]
    light = torch.nn.functional.normalize(_tensor(scenes, "light_dir"), dim=-1)
    albedo = torch.tensor([HAND_RGB[s["hand_colour"]] for s in scenes]) * _tensor(scenes, "albedo_jitter")
    # Shaded at the hand pixels only; the backdrop fills the rest.
    b = raster.hit_image
    shade = _lambert(raster.normal, *(x.index_select(0, b) for x in (light, ambient, diffuse)))
    image = _backdrop(scenes, K, light, ambient, diffuse, gain, size)
    # Flat index of (image, channel, pixel) for every hand pixel's three channels: index_copy_ beats index_put_.
    at = (b[:, None] * 3 + torch.arange(3)) * (size * size) + raster.hit_pixel[:, None]
    # A recoloured composite's hand is pulled towards its backdrop's colour (harmonisation).
    tint = _tensor(scenes, "hand_tint")[:, None]
    albedo = (1 - tint) * albedo + tint * _tensor(scenes, "base_rgb")
    image.view(-1).index_copy_(0, at.view(-1), (albedo.index_select(0, b) * (shade * gain.index_select(0, b))[:, None]).view(-1))
    image.mul_((_tensor(scenes, "white_balance") * _tensor(scenes, "exposure")[:, None])[..., None, None])
    mask = raster.prim >= 0
    image = blurred(image, _tensor(scenes, "blur") * size)
    # In place from here on: these full-frame passes cost as much as shading the hand.
    noise = torch.empty_like(image)
    for i, scene in enumerate(scenes):
        torch.randn(3, size, size, generator=torch.Generator().manual_seed(scene["noise_seed"]), out=noise[i])
    image += noise.mul_(_tensor(scenes, "noise_sigma")[:, None, None, None])
    image = image.clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    uv = project(K, xyz)
    return {
        "image": image,
        "xyz": xyz,
        "uv": uv,
        "visible": joint_visibility(xyz, uv, raster.depth, hand_params.scale),
        "K": K,
        "mask": mask,
        "depth": raster.depth,
    }


def blurred(image: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    """Each image (B,3,S,S) blurred by a separable Gaussian of its own sigma (B,) in pixels; 0: unchanged.
    Edges are replicated, so a blurred border does not darken."""
    out = image.clone()
    for i in torch.nonzero(sigma_px > 0).flatten().tolist():
        s = float(sigma_px[i])
        r = max(1, int(np.ceil(3 * s)))
        k = torch.exp(-(torch.arange(-r, r + 1, dtype=image.dtype) ** 2) / (2 * s * s))
        k = (k / k.sum()).expand(3, 1, -1)
        x = torch.nn.functional.pad(image[i : i + 1], (r, r, r, r), mode="replicate")
        x = torch.nn.functional.conv2d(x, k[..., None, :], groups=3)  # along rows
        out[i] = torch.nn.functional.conv2d(x, k[..., :, None], groups=3)[0]  # along columns
    return out


def joint_radii(scale: torch.Tensor) -> torch.Tensor:
    """Flesh radius around each joint (B, 21): the radius of the bone ending there (the palm's for the wrist)."""
    per_joint = torch.tensor((13.0,) + BONE_RADII)
    return per_joint[None] * scale[:, None]


def joint_visibility(xyz, uv, depth, scale) -> torch.Tensor:
    """A joint is visible if it projects inside the image and the z-buffer's first surface on the ray
    through its pixel lies no more than (1 + VISIBILITY_SLACK) flesh radii in front of the joint."""
    B, S = depth.shape[0], depth.shape[-1]
    pix = uv.round().long()
    inside = (pix >= 0).all(-1) & (pix < S).all(-1)
    pix = pix.clamp(0, S - 1)
    first = depth[torch.arange(B)[:, None], pix[..., 1], pix[..., 0]]
    reach = xyz.norm(dim=-1) - (1 + VISIBILITY_SLACK) * joint_radii(scale)
    return inside & (first >= reach)
