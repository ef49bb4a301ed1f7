"""The renderer: joints land on the hand, visibility follows the z-buffer, renders are deterministic."""

import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from render_reference import PATH, render_reference

from repro.data.domains import DOMAINS, GENERATOR_VERSION
from repro.data.geometry import project
from repro.data.synthetic import render_range, sample_rng
from repro.data.world.raycast import ray_capsule, ray_sphere
from repro.data.world.render import pixel_rays, take
from repro.data.world.scene import blurred, draw_scene, joint_radii, render_scenes
from repro.data.world.style import COLOUR_RGB


def test_ray_sphere_and_capsule_hit_distances_by_hand():
    rd = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    centre = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([10.0]))
    assert ray_sphere(rd, centre, torch.tensor([2.0])).item() == 8.0
    # capsule lying across the ray at z = 10, radius 1: body hit at t = 9
    a = (torch.tensor([-5.0]), torch.tensor([0.0]), torch.tensor([10.0]))
    b = (torch.tensor([5.0]), torch.tensor([0.0]), torch.tensor([10.0]))
    assert abs(ray_capsule(rd, a, b, torch.tensor([1.0])).item() - 9.0) < 1e-5
    # capsule along the ray from z = 10 to 20: the near cap at t = 9
    b2 = (torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([20.0]))
    assert abs(ray_capsule(rd, centre, b2, torch.tensor([1.0])).item() - 9.0) < 1e-5
    miss = (torch.tensor([0.6]), torch.tensor([0.0]), torch.tensor([0.8]))
    assert ray_capsule(miss, a, b, torch.tensor([1.0])).isinf().all()


def test_visible_joints_land_on_the_hand_not_the_green_screen():
    out = render_range(DOMAINS["synth-frei"], "val", 0, 32, 128)
    green = torch.tensor(COLOUR_RGB["green"]) * 255
    pix = out["uv"].round().long()
    checked = 0
    for i in range(32):
        for j in out["visible"][i].nonzero()[:, 0]:
            u, v = pix[i, j]
            assert out["mask"][i, v, u], f"sample {i} joint {j} is visible but not on the hand"
            checked += 1
            if i % DOMAINS["synth-frei"].versions:
                continue  # the replaced versions recolour the hand; version 0 shows it as rendered, on the green screen
            rgb = out["image"][i, :, v, u].float()
            assert (rgb - green).norm() > 100, f"sample {i} joint {j} pixel {rgb} looks like the green screen"
            assert rgb[0] >= rgb[1] - 10  # skin tones are red-dominant, the screen green-dominant
    assert checked > 32 * 10


def test_visibility_agrees_with_the_z_buffer():
    scenes = [draw_scene(DOMAINS["synth-rhd"], sample_rng(DOMAINS["synth-rhd"], "test", i)) for i in range(16)]
    out = render_scenes(scenes, 128)
    scale = torch.tensor([s["hand"]["scale"] for s in scenes], dtype=torch.float32)
    pix = out["uv"].round().long()
    inside = ((pix >= 0) & (pix < 128)).all(-1)
    b = torch.arange(16)[:, None]
    first = out["depth"][b, pix[..., 1].clamp(0, 127), pix[..., 0].clamp(0, 127)]
    in_front = first < out["xyz"].norm(dim=-1) - 2 * joint_radii(scale)
    assert torch.equal(out["visible"], inside & ~in_front)
    assert (~out["visible"]).any() and out["visible"].any()


def test_a_fist_seen_from_the_back_hides_its_fingertips():
    scene = draw_scene(DOMAINS["synth-frei"], np.random.default_rng(0))
    scene["hand"]["finger_angles"] = np.tile([85.0, 0.0, 105.0, 80.0], (4, 1))
    scene.update(azimuth=180.0, elevation=0.0, roll=0.0, off_axis=np.zeros(2))
    visible = render_scenes([scene], 128)["visible"][0]
    assert not visible[[8, 12, 16, 20]].any()  # tips tucked behind the knuckles
    assert visible[[5, 9, 13]].all()  # knuckles face the camera


def test_renders_are_deterministic_and_batch_independent():
    domain = DOMAINS["synth-clip"]
    first = render_range(domain, "train", 0, 6, 64)
    again = render_range(domain, "train", 0, 6, 64)
    alone = render_range(domain, "train", 4, 5, 64)
    assert torch.equal(first["image"], again["image"]) and first["caption"] == again["caption"]
    assert torch.equal(first["image"][4], alone["image"][0])
    assert torch.equal(first["xyz"][4], alone["xyz"][0])
    assert not torch.equal(first["image"][0], first["image"][1])


def test_uv_is_the_projection_of_xyz_with_the_crop_camera():
    out = render_range(DOMAINS["synth-stb"], "test", 0, 8, 128)
    assert torch.allclose(project(out["K"], out["xyz"]), out["uv"], atol=1e-3)
    assert (out["xyz"][..., 2] > 250).all()  # in front of the camera, in millimetres (the palm at 450 mm or more)


BLUR_REACH = 3  # pixels: the widest camera blur (sigma 1% of the size: 0.48 px at 48 px) has kernel radius 2; one to spare


def _edge(mask: torch.Tensor) -> torch.Tensor:
    """Pixels of (N, H, W) bool masks with a 4-neighbour of the other class."""
    padded = torch.nn.functional.pad(mask[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0]
    neighbours = torch.stack([padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]])
    return (neighbours != mask.float()).any(0)


def test_edge_marks_both_sides_of_a_silhouette():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True
    edge = _edge(mask)[0]
    assert edge[1:3, 1:3].all() and edge[0, 1:3].all() and edge[1:3, 3].all()
    assert not edge[0, 0] and not edge[3, 3]  # diagonal neighbours only


def test_renders_match_the_reference_of_this_generator_version():
    """A change that alters rendered samples must bump GENERATOR_VERSION (see tests/render_reference.py).
    Another CPU may round a transcendental function differently in the last bit (the reference is
    an Intel Xeon's; an AMD EPYC's renders differ, RESULTS.md): that may move a pixel by a level or two,
    or flip a pixel on a hand's silhouette, and with it that pixel's colour and, through the camera's
    blur, its neighbours'. That much is tolerated: at most 5% of the silhouettes' edge pixels flipped,
    none inside a hand or the background; values farther than BLUR_REACH from a flipped pixel at most two
    levels apart and fewer than 0.5% of them changed; nothing more."""
    ref = torch.load(PATH)
    assert ref["generator_version"] == GENERATOR_VERSION, f"{PATH} is for version {ref['generator_version']}: regenerate it"
    for name, now in render_reference()["renders"].items():
        mask = ref["renders"][name]["mask"]
        flipped, edge = now["mask"] != mask, _edge(mask)
        assert not (flipped & ~edge).any(), f"{name}: hand silhouettes changed away from their edges"
        assert flipped.sum() <= 0.05 * edge.sum(), f"{name}: {flipped.sum()} of {edge.sum()} edge pixels flipped"
        near = torch.nn.functional.max_pool2d(flipped[:, None].float(), 2 * BLUR_REACH + 1, 1, BLUR_REACH) > 0
        diff = (now["image"].int() - ref["renders"][name]["image"].int()).abs().masked_fill(near, 0)
        assert diff.max() <= 2 and (diff > 0).float().mean() < 5e-3, f"{name}: pixels changed (max {diff.max()})"


def test_take_is_advanced_indexing():
    x = torch.arange(24).view(2, 4, 3)
    assert take(x, torch.tensor([1, 0]), torch.tensor([3, 2])).tolist() == [[21, 22, 23], [6, 7, 8]]
    assert take(x, torch.tensor([1, 1])).tolist() == [x[1].tolist(), x[1].tolist()]


def test_pixel_rays_are_the_normalised_inverse_intrinsics_bit_for_bit():
    K = torch.tensor([[[300.0, 0, 20.5], [0, 310.0, 40.25], [0, 0, 1]], [[90.0, 0, -7.0], [0, 95.0, 3.0], [0, 0, 1]]])
    v, u = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    product = torch.stack([u, v, torch.ones_like(u)], -1) @ torch.linalg.inv(K).transpose(-1, -2)[:, None]
    rays = pixel_rays(K, 8)
    assert torch.equal(rays, torch.nn.functional.normalize(product, dim=-1))
    assert torch.allclose(rays[0, 0, 0], torch.nn.functional.normalize(torch.tensor([-20.5 / 300, -40.25 / 310, 1.0]), dim=0))


def test_the_render_workers_allocator_tuning_applies_on_glibc():
    # In a child process: the tuning is process-wide and this test process should keep the default.
    code = "from repro.allocator import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(platform.libc_ver()[0] == "glibc")


def test_blur_is_a_normalised_separable_gaussian_per_image():
    image = torch.zeros(3, 3, 9, 9)
    image[:, :, 4, 4] = 1.0
    image[2] = 0.25  # a flat image stays flat: replicated edges, weights that sum to 1
    out = blurred(image, torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(out[0], image[0])  # sigma 0: untouched
    # sigma 1, radius 3: weights exp(-x^2 / 2) / 2.5059; the centre is the middle one squared, 0.39905^2
    w = torch.exp(-(torch.arange(-3.0, 4.0) ** 2) / 2)
    w = w / w.sum()
    assert out[1, 0, 4, 4].item() == pytest.approx(w[3].item() ** 2, rel=1e-6) and w[3].item() ** 2 == pytest.approx(0.1592, abs=1e-4)
    assert out[1, 0, 4, 5].item() == pytest.approx((w[3] * w[4]).item(), rel=1e-6) and out[1].sum().item() == pytest.approx(3.0, rel=1e-6)
    assert torch.allclose(out[2], torch.full_like(out[2], 0.25))


def test_only_stb_and_its_style_diagnostic_render_a_softer_noisier_camera():
    soft = {name for name, spec in DOMAINS.items() if spec.blur != (0.0, 0.0)}
    assert soft == {"synth-stb", "synth-stb-style"}
    assert DOMAINS["synth-stb"].sensor_noise == (0.04, 0.08) and DOMAINS["synth-frei"].sensor_noise == (0.005, 0.02)
