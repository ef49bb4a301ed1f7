"""Table 6's "normal augmentation": colour jitter, cut-out, Gaussian noise, Sobel filter, colour drop
and Gaussian blur, each applied to a sample with its own probability (photometric only, so the pose
labels stay valid). Images are float (B, 3, H, W) in [0, 1]; randomness comes from torch's global
generator, which the trainer seeds and checkpoints."""

import torch
import torch.nn.functional as F
from torchvision.transforms import v2


def sobel(image: torch.Tensor) -> torch.Tensor:
    """Per-channel gradient magnitude of a (3, H, W) image, rescaled to [0, 1]."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kx, kx.T])[:, None].repeat(3, 1, 1, 1)  # (6, 1, 3, 3), two per channel
    grad = F.conv2d(F.pad(image[None], (1, 1, 1, 1), mode="replicate"), kernels, groups=3)[0]
    magnitude = grad.view(3, 2, *image.shape[-2:]).norm(dim=1)
    return magnitude / magnitude.amax().clamp_min(1e-6)


TRANSFORMS = (  # (name, probability, transform of one (3, H, W) image)
    ("colour_jitter", 0.8, v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)),
    ("cutout", 0.5, v2.RandomErasing(p=1.0, scale=(0.02, 0.15), value=0.0)),
    ("gaussian_noise", 0.5, v2.GaussianNoise(sigma=0.05, clip=True)),
    ("sobel", 0.2, sobel),
    ("colour_drop", 0.2, v2.Grayscale(num_output_channels=3)),
    ("gaussian_blur", 0.5, v2.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))),
)


def normal_augment(images: torch.Tensor) -> torch.Tensor:
    out = []
    for image in images:
        for _, p, transform in TRANSFORMS:
            if torch.rand(()) < p:
                image = transform(image)
        out.append(image)
    return torch.stack(out)
