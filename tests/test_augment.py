"""Table 6's normal augmentation, batched: each transform does what its name says, per sample, seeded,
on the images' device and dtype; the colour jitter's ops are torchvision's."""

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from repro.train.augment import (
    TRANSFORMS,
    ColorJitter,
    GaussianBlur,
    GaussianNoise,
    Grayscale,
    RandomErasing,
    Sobel,
    normal_augment,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _images(n=8, size=32, seed=0, **kwargs) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), **kwargs)


def _always(transform):
    """The table with one transform, applied to every sample."""
    return [("only", 1.0, transform)]


def test_the_table_keeps_the_papers_six_transforms_in_order():
    assert [name for name, _, _ in TRANSFORMS] == ["colour_jitter", "cutout", "gaussian_noise", "sobel", "colour_drop", "gaussian_blur"]
    assert [p for _, p, _ in TRANSFORMS] == [0.8, 0.5, 0.5, 0.2, 0.2, 0.5]
    assert repr(TRANSFORMS[0][2]) == "ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)"


def test_colour_jitter_ops_are_torchvisions():
    x, u = _images(), torch.rand(8, 8)
    factors, hue = 0.6 + 0.8 * u[:, :3], -0.1 + 0.2 * u[:, 3]
    jitter = ColorJitter()
    references = {
        jitter._brightness: TF.adjust_brightness,
        jitter._contrast: TF.adjust_contrast,
        jitter._saturation: TF.adjust_saturation,
    }
    for k, (ours, theirs) in enumerate(references.items()):
        expected = torch.stack([theirs(x[i], factors[i, k].item()) for i in range(8)])
        torch.testing.assert_close(ours(x, u), expected, atol=1e-6, rtol=0)
    greys = (x * 4).round() / 4  # ties between channels and grey pixels take torchvision's branches
    for image in (x, greys):
        expected = torch.stack([TF.adjust_hue(image[i], hue[i].item()) for i in range(8)])
        torch.testing.assert_close(jitter._hue(image, u), expected, atol=1e-5, rtol=0)


def test_colour_jitter_applies_each_op_once_per_sample_in_its_own_order():
    on = torch.tensor([True, True, False, True])
    u = torch.rand(4, 8)
    steps = ColorJitter().steps(on, u)
    ops = [fn.__name__ for fn, _ in steps[:4]]
    for sample in range(4):
        seen = [ops[s % 4] for s, (_, idx) in enumerate(steps) if sample in idx.tolist()]
        expected = [ops[k] for k in u[sample, 4:].argsort().tolist()] if on[sample] else []
        assert seen == expected
    grey = _images(1).mean(1, keepdim=True).expand(8, 3, -1, -1)
    out = normal_augment(grey, _always(ColorJitter()))
    assert not torch.equal(out, grey) and torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])  # grey stays grey


def test_cutout_zeroes_one_rectangle_of_the_drawn_area():
    x = _images(64, size=64).clamp_min(0.01)
    out = normal_augment(x, _always(RandomErasing()))
    zero = (out == 0).all(dim=1)
    for mask, before, after in zip(zero, x, out):
        rows, cols = mask.any(dim=1).nonzero()[:, 0], mask.any(dim=0).nonzero()[:, 0]
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert mask.sum() == height * width == len(rows) * len(cols)  # one filled rectangle
        # the drawn area share, up to rounding the sides to whole pixels
        assert 0.02 - (height + width) / 64**2 <= mask.sum() / 64**2 <= 0.15 + (height + width) / 64**2
        assert torch.equal(after[:, ~mask], before[:, ~mask])


def test_gaussian_noise_has_the_given_sigma_and_stays_in_range():
    x = torch.full((16, 3, 32, 32), 0.5)
    out = normal_augment(x, _always(GaussianNoise()))
    assert (out - x).std().item() == pytest.approx(0.05, rel=0.05)
    edge = normal_augment(torch.ones(4, 3, 8, 8), _always(GaussianNoise()))
    assert edge.max() <= 1 and edge.min() < 1  # clipped


def test_sobel_of_a_constant_image_is_zero_and_an_edge_is_found():
    assert torch.equal(normal_augment(torch.full((2, 3, 16, 16), 0.3), _always(Sobel())), torch.zeros(2, 3, 16, 16))
    step = torch.zeros(1, 3, 16, 16)
    step[..., 8:] = 1.0
    out = normal_augment(step, _always(Sobel()))
    assert out.amax() == 1 and (out[..., 7:9] == 1).all() and (out[..., :6] == 0).all() and (out[..., 10:] == 0).all()


def test_colour_drop_gives_equal_channels_of_the_luma():
    x = _images()
    out = normal_augment(x, _always(Grayscale()))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    torch.testing.assert_close(out, TF.rgb_to_grayscale(x, num_output_channels=3))


def test_gaussian_blur_lowers_the_variance_and_keeps_a_constant_image():
    x = _images()
    torch.manual_seed(0)  # the per-sample sigmas; at sigma near 0.1 the kernel is all but the identity
    out = normal_augment(x, _always(GaussianBlur()))
    before, after = x.var(dim=(1, 2, 3)), out.var(dim=(1, 2, 3))
    assert (after < before).all() and (after < 0.5 * before).sum() >= len(x) // 2
    constant = torch.full((2, 3, 16, 16), 0.7)
    torch.testing.assert_close(normal_augment(constant, _always(GaussianBlur())), constant)


@pytest.mark.parametrize("name,p,transform", TRANSFORMS, ids=[name for name, _, _ in TRANSFORMS])
def test_each_transform_applies_to_its_share_of_samples_independently(name, p, transform):
    x = _images(256, size=16)
    torch.manual_seed(0)
    out = normal_augment(x, [(name, 0.5, transform)])
    changed = (out != x).flatten(1).any(dim=1)
    assert 96 <= changed.sum() <= 160  # about half of them: Binomial(256, 1/2) is within 4 std
    torch.manual_seed(0)
    assert torch.equal(normal_augment(x, [(name, 0.5, transform)]), out)  # deterministic under a seed


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_augmentation_keeps_range_device_and_dtype_and_the_input(device, dtype):
    x = _images(32, dtype=dtype).to(device)
    before = x.clone()
    torch.manual_seed(1)
    out = normal_augment(x)
    assert out.device == x.device and out.dtype == dtype and out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(x, before)  # a new tensor; the batch itself is untouched
    changed = (out != x).flatten(1).any(dim=1)
    assert changed.sum() >= 24  # each sample is left alone with probability 0.2 * 0.5^3 * 0.8^2 = 1.6%
    torch.manual_seed(1)
    assert torch.equal(normal_augment(x), out)
    torch.manual_seed(2)
    assert not torch.equal(normal_augment(x), out)
