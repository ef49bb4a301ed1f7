"""ModelConfig: the sizes and switches of f_H2D + f_PP (pure data; the run config holds one)."""

from dataclasses import dataclass

from repro.errors import ConfigError

FUSIONS = ("concat", "sum")
INITS = ("torch", "he")
# f_PP's viewpoint heads -> the axis-angle given to Rodrigues (repro.model.pose_prior.VIEWPOINTS)
VIEWPOINTS = ("bounded", "axis-angle")
# Values that records written before a field existed were computed with (ModelConfig.from_record).
BEFORE_FIELD = {"viewpoint": "axis-angle"}


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
        small preset (measured steps in RESULTS.md, "Earlier worlds").
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
    viewpoint: "bounded" (the default: the three heads' axis-angle with its angle squashed below pi,
        repro.geometry3d.bounded_angle) or "axis-angle" (the heads' output as it is, the supplement's
        literal reading, with which about a third of Table 6's supervised-augmentation trainings diverged).
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
    viewpoint: str = "bounded"

    def __post_init__(self):
        checks = {
            "input_size": (self.input_size >= 8 and self.input_size % 8 == 0, "a positive multiple of 8"),
            "width": (self.width > 0, "a positive number"),
            "prior_width": (self.prior_width is None or self.prior_width > 0, "a positive number or none"),
            "fusion": (self.fusion in FUSIONS, f"one of {FUSIONS}"),
            "init": (self.init in INITS, f"one of {INITS}"),
            "viewpoint": (self.viewpoint in VIEWPOINTS, f"one of {VIEWPOINTS}"),
            "clip_dim": (self.clip_dim >= 1, "a positive integer"),
            "proj_dim": (self.proj_dim >= 1, "a positive integer"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"config field 'model.{name}' = {getattr(self, name)!r}: expected {expected}")

    @classmethod
    def from_record(cls, record: dict) -> "ModelConfig":
        """The config a stored record (a run's config.json, a checkpoint's model_config) was trained with:
        fields it predates take the value it was computed with."""
        return cls(**{**BEFORE_FIELD, **record})

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
