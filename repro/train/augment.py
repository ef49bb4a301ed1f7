"""Table 6's "normal augmentation": colour jitter, cut-out, Gaussian noise, Sobel filter, colour drop
and Gaussian blur, in that order, each applied to a sample with its own probability (photometric only,
so the pose labels stay valid). Images are float (B, 3, H, W) in [0, 1].

The whole batch is augmented at once on the images' device. Every transform's per-sample draws (whether
it applies, and its parameters) come from one draw of torch's global generator, which the trainer seeds
and checkpoints; they are drawn on the CPU, so the samples a transform applies to are known there without
waiting for the device, and each transform computes only on those samples (gathered by index) and writes
them back. The Gaussian noise itself is drawn on the images' device (on a GPU from its generator, which
torch.manual_seed seeds too). The strengths are torchvision's transforms' (ColorJitter, RandomErasing,
GaussianNoise, Grayscale, GaussianBlur), which the per-image version of this module used.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# rgb_to_grayscale's luma weights (torchvision, ITU-R 601-2)
LUMA = (0.2989, 0.587, 0.114)

Step = tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], torch.Tensor]  # (fn(images, params), sample indices)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of (B, 3, H, W) images."""
    r, g, b = x.split(1, dim=1)
    return r.mul(LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2])


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend per sample: factor * x + (1 - factor) * other, clipped to [0, 1]."""
    return torch.lerp(other, x, factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def _per_sample(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Uniform draws in [0, 1) mapped to [low, high)."""
    return u.mul(high - low).add_(low)


class Transform:
    """One of the table's transforms: `apply(images, params)` maps the images of the samples it applies to,
    with their parameter draws, to their new images."""

    draws = 0  # uniform draws per sample for its parameters, besides the one deciding whether it applies

    def steps(self, on: torch.Tensor, u: torch.Tensor) -> list[Step]:
        """What to apply to which samples, in turn: `on` (B,) whether it applies, `u` (B, draws) on the CPU."""
        return [(self.apply, on.nonzero()[:, 0])]


@dataclass(frozen=True)
class ColorJitter(Transform):
    """torchvision's ColorJitter: brightness, contrast, saturation and hue factors drawn per sample and
    applied in an order drawn per sample."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    draws = 8  # four factors, then four keys whose ranks give the order

    def steps(self, on, u):
        # Round r applies to each sample the op its order puts r-th: one gather per op and round, so every
        # sample sees every op once, in its own order.
        ops = (self._brightness, self._contrast, self._saturation, self._hue)
        order = u[:, 4:].argsort(dim=1)
        return [(op, (on & (order[:, r] == k)).nonzero()[:, 0]) for r in range(4) for k, op in enumerate(ops)]

    def _brightness(self, x, u):  # a blend with black
        return x.mul(_per_sample(u[:, 0], 1 - self.brightness, 1 + self.brightness).view(-1, 1, 1, 1)).clamp_(0, 1)

    def _contrast(self, x, u):
        mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
        return _blend(x, mean, _per_sample(u[:, 1], 1 - self.contrast, 1 + self.contrast))

    def _saturation(self, x, u):
        return _blend(x, grayscale(x), _per_sample(u[:, 2], 1 - self.saturation, 1 + self.saturation))

    def _hue(self, x, u):
        """Hue rotated in HSV by a per-sample shift (torchvision's adjust_hue), with value and saturation
        kept: hue in sixths from the max channel, back to RGB with the hexcone formula. It selects by lerps
        with 0/1 weights: exact, and much cheaper than torch.where on the CPU."""
        shift = _per_sample(u[:, 3], -self.hue, self.hue).mul_(6).view(-1, 1, 1, 1)
        high, low = x.amax(dim=1, keepdim=True), x.amin(dim=1, keepdim=True)
        chroma = high - low
        r, g, b = x.split(1, dim=1)
        # The numerator of the hue of the first max channel: (g - b), 2C + (b - r), 4C + (r - g). Grey
        # pixels (C = 0) get 0 / tiny, and the C * (...) below keeps them as they are.
        from_g = torch.lerp((r - g).add_(chroma, alpha=4), (b - r).add_(chroma, alpha=2), (high == g).to(x.dtype))
        hue = torch.lerp(from_g, g - b, (high == r).to(x.dtype)).div_(chroma.clamp_min(torch.finfo(x.dtype).tiny))
        offsets = torch.arange(5, 0, -2, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)  # R, G, B: made there, not copied
        k = hue.add_(shift) + offsets
        k = k.sub_(torch.floor(k * (1 / 6)), alpha=6)  # mod 6
        return torch.addcmul(high, chroma, torch.minimum(k, 4 - k).clamp_(0, 1), value=-1)


@dataclass(frozen=True)
class RandomErasing(Transform):
    """torchvision's RandomErasing: a rectangle of a per-sample area share and aspect ratio, set to value."""

    scale: tuple[float, float] = (0.02, 0.15)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0
    draws = 4  # area, log aspect ratio, top, left

    def apply(self, x, u):
        size = x.shape[-2:]
        area = _per_sample(u[:, 0], *self.scale) * (size[0] * size[1])
        aspect = torch.exp(_per_sample(u[:, 1], math.log(self.ratio[0]), math.log(self.ratio[1])))
        # Within these scales and ratios the rectangle always fits, which torchvision's retries check.
        h, w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
        top, left = (u[:, 2] * (size[0] - h + 1)).floor(), (u[:, 3] * (size[1] - w + 1)).floor()
        rows = torch.arange(size[0], device=x.device, dtype=x.dtype)
        cols = torch.arange(size[1], device=x.device, dtype=x.dtype)
        inside_rows = ((rows >= top[:, None]) & (rows < (top + h)[:, None])).to(x.dtype)
        inside_cols = ((cols >= left[:, None]) & (cols < (left + w)[:, None])).to(x.dtype)
        inside = inside_rows[:, None, :, None] * inside_cols[:, None, None, :]  # 0/1: cheaper than a bool mask on the CPU
        return x - (x - self.value) * inside


@dataclass(frozen=True)
class GaussianNoise(Transform):
    """torchvision's GaussianNoise: zero-mean noise of std sigma, clipped to [0, 1]."""

    sigma: float = 0.05
    clip: bool = True

    def apply(self, x, u):
        out = x + self.sigma * torch.randn_like(x)
        return out.clamp_(0, 1) if self.clip else out


@dataclass(frozen=True)
class Sobel(Transform):
    """Per-channel Sobel gradient magnitude (replicated border), rescaled by the image's maximum to [0, 1]."""

    def apply(self, x, u):
        p = F.pad(x, (1, 1, 1, 1), mode="replicate")
        # separable: [-1, 0, 1] along one axis, [1, 2, 1] along the other
        dx = p[..., 2:] - p[..., :-2]
        gx = dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]
        sy = p[..., :-2] + 2 * p[..., 1:-1] + p[..., 2:]
        gy = sy[..., 2:, :] - sy[..., :-2, :]
        magnitude = gx.mul_(gx).addcmul_(gy, gy).sqrt_()
        return magnitude / magnitude.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


@dataclass(frozen=True)
class Grayscale(Transform):
    """torchvision's Grayscale(num_output_channels=3): colour drop."""

    def apply(self, x, u):
        return grayscale(x).expand_as(x)


@dataclass(frozen=True)
class GaussianBlur(Transform):
    """torchvision's GaussianBlur: a kernel_size Gaussian with a per-sample sigma, reflected border."""

    kernel_size: int = 5
    sigma: tuple[float, float] = (0.1, 2.0)
    draws = 1

    def apply(self, x, u):
        n, c, h, w = x.shape
        half = self.kernel_size // 2
        taps = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-0.5 * (taps / _per_sample(u[:, 0], *self.sigma)[:, None]) ** 2)
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n c, k)
        # separable, one depthwise kernel per sample and channel
        y = F.pad(x.reshape(1, n * c, h, w), (half,) * 4, mode="reflect")
        y = F.conv2d(y, kernel.view(n * c, 1, 1, -1), groups=n * c)
        return F.conv2d(y, kernel.view(n * c, 1, -1, 1), groups=n * c).view(n, c, h, w)


TRANSFORMS = (  # (name, probability, transform), applied in this order
    ("colour_jitter", 0.8, ColorJitter()),
    ("cutout", 0.5, RandomErasing()),
    ("gaussian_noise", 0.5, GaussianNoise()),
    ("sobel", 0.2, Sobel()),
    ("colour_drop", 0.2, Grayscale()),
    ("gaussian_blur", 0.5, GaussianBlur()),
)


def normal_augment(images: torch.Tensor, transforms=TRANSFORMS) -> torch.Tensor:
    """A newly augmented copy of a batch (B, 3, H, W) in [0, 1], same device and dtype."""
    n = images.shape[0]
    draws = [torch.rand(n, 1 + t.draws) for _, _, t in transforms]  # the CPU's global generator, one draw each
    steps, first = [], 0
    for (_, p, transform), u in zip(transforms, draws):
        cols = slice(first + 1, first + 1 + transform.draws)  # its parameters' columns in `params` below
        first = cols.stop
        steps += [(fn, idx, cols) for fn, idx in transform.steps(u[:, 0] < p, u[:, 1:]) if len(idx)]
    if not steps:
        return images.clone()
    # One copy to the device each for the indices and the parameters.
    params = torch.cat(draws, dim=1).to(images.device, images.dtype, non_blocking=True)
    sizes = [len(idx) for _, idx, _ in steps]
    indices = torch.cat([idx for _, idx, _ in steps]).to(images.device, non_blocking=True).split(sizes)
    x = images.clone()
    with torch.autocast(images.device.type, enabled=False):  # the transforms' convolutions stay in the images' dtype
        for (fn, _, cols), idx in zip(steps, indices):
            x.index_copy_(0, idx, fn(x.index_select(0, idx), params.index_select(0, idx)[:, cols]))
    return x
