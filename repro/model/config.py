"""ModelConfig: the sizes and switches of f_H2D + f_PP (pure data; the run config holds one)."""

from dataclasses import dataclass

FUSIONS = ("concat", "sum")
INITS = ("torch", "he")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the hand pose network (supplement Tables 1-2 at the defaults).

    input_size: side of the square RGB crop; heatmaps are input_size // 8 on a side.
    width: multiplies every conv / linear width of f_H2D and f_PP (rounded, at least 4), except the
        21-channel heatmap outputs, the 63-d canonical-pose output and the three axis-angle heads.
        width = 1.0 with input_size = 256 is the paper's network exactly.
    prior_width: f_PP's own width multiplier; None means `width`. f_PP reads 21 heatmaps at 1/8 of
        the input side, so it costs little, but scaled with a narrow f_H2D its first conv squeezes the
        21 heatmaps into 4 channels (width 0.125): the 3D lifting, not the 2D heatmaps, then limits the
        small preset (measured: 2D error down from 3.1 to 0.9 heatmap pixels left the EPE unchanged).
    branch2: build Branch2 (CLIP fusion + ProjectionHead) for the contrastive loss; False is the
        paper's Baseline (no Branch2 parameters at all).
    fusion: "concat" (e2 = FC'(concat(h, f_CLIP)), the paper's default) or "sum"
        (e2 = FC''(h) + f_CLIP, with f_CLIP mapped linearly to the e-width when it differs).
    clip_dim: dimension of f_CLIP (512 for ViT-B/32).
    proj_dim: ProjectionHead output (128 in the paper; not scaled by width).
    leaky_slope: negative slope of every LeakyReLU.
    init: "torch" (PyTorch's default init, the default; the paper does not say) or "he" (He-normal for the
        LeakyReLU, zero biases, on the trunk, Branch1 and f_PP; Branch2 keeps PyTorch's init with its
        projection output at 1/100, so that eq. 4 starts inside its 0.5 floor; see HandPoseModel).
    """

    input_size: int = 256
    width: float = 1.0
    prior_width: float | None = None
    branch2: bool = True
    fusion: str = "concat"
    clip_dim: int = 512
    proj_dim: int = 128
    leaky_slope: float = 0.01
    init: str = "torch"

    def __post_init__(self):
        if self.input_size < 8 or self.input_size % 8:
            raise ValueError(f"input_size must be a positive multiple of 8, got {self.input_size}")
        for name in ("width", "prior_width"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.clip_dim < 1 or self.proj_dim < 1:
            raise ValueError("clip_dim and proj_dim must be positive")

    @property
    def heatmap_size(self) -> int:
        return self.input_size // 8

    def ch(self, channels: int) -> int:
        """A paper width scaled by `width`: round(channels * width), at least 4."""
        return _scaled(channels, self.width)

    def prior_ch(self, channels: int) -> int:
        """A paper width of f_PP scaled by `prior_width` (or `width`), at least 4."""
        return _scaled(channels, self.width if self.prior_width is None else self.prior_width)


def _scaled(channels: int, multiplier: float) -> int:
    return max(4, int(round(channels * multiplier)))
