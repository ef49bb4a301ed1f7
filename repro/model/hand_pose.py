"""f_HPE = f_PP(f_H2D(x)): the full hand pose model (paper Fig. 2).

`HandPoseModel(cfg)(images, clip_feature=None)` returns a `HandPoseOutput`. Branch2 runs only
when the model has one (cfg.branch2) and a clip feature is given; at test time call it without
one (Branch1 + f_PP only, paper Sec. 3.5). Images are float (B,3,S,S), already normalised by the
caller; S must equal cfg.input_size.
"""

from dataclasses import dataclass

import torch
from torch import nn

from repro.model.config import ModelConfig
from repro.model.heatmap_net import HeatmapNet
from repro.model.pose_prior import PosePrior


@dataclass
class HandPoseOutput:
    heatmaps: list[torch.Tensor]  # 3 CPM stages, each (B,21,h,w); the last feeds f_PP
    coords: torch.Tensor  # (B,21,3) c = canonical @ rotation, normalised, palm-centre root
    e1p: torch.Tensor | None  # (B,proj_dim) projected e1 (anchor); None without Branch2 / CLIP
    e2p: torch.Tensor | None  # (B,proj_dim) projected e2 (positive)
    canonical: torch.Tensor | None = None  # (B,21,3) f_PP stream A
    rotation: torch.Tensor | None = None  # (B,3,3) f_PP stream B (Rodrigues)


PROJECTION_OUTPUT_SCALE = 0.01  # init="he": scale of the ProjectionHead's output layer (see HandPoseModel)


class HandPoseModel(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg or ModelConfig()
        # Paired rows: the parts every model has draw their weights alike whether or not it has a Branch2.
        # He init draws from a generator of its own, seeded by the first draw; f_PP is built before f_H2D,
        # whose Branch2 comes last, so PyTorch's default init draws f_PP, the trunk and Branch1 first too.
        he = torch.Generator().manual_seed(int(torch.randint(2**62, (), device="cpu")))
        pose_prior = PosePrior(self.cfg)
        self.h2d = HeatmapNet(self.cfg)
        self.pose_prior = pose_prior
        if self.cfg.init == "he":
            for part in (self.h2d.trunk, self.h2d.stage1, self.h2d.stage2, self.h2d.stage3, self.pose_prior):
                part.apply(lambda module: self._he_init(module, he))
            if self.h2d.branch2 is not None:
                # Eq. 4 is bounded only while d_neg stays under its 0.5 floor. On He-scale trunk features the
                # default-init embeddings start at d_neg ~ 0.9 and the loss ran away within 50 batches; at
                # 1/100 of the output layer they start inside the floor, as they do with PyTorch's init throughout.
                with torch.no_grad():
                    self.h2d.branch2.projection.net[-1].weight.mul_(PROJECTION_OUTPUT_SCALE)

    def _he_init(self, module: nn.Module, generator: torch.Generator) -> None:
        """He (Kaiming) normal init for the LeakyReLU slope, zero biases, on the LeakyReLU chains: the trunk,
        Branch1 and f_PP. Branch2 keeps PyTorch's default: its layers are plain convs and linears (and a
        ReLU), so the LeakyReLU gain does not apply to them."""
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=self.cfg.leaky_slope, nonlinearity="leaky_relu", generator=generator)
            nn.init.zeros_(module.bias)

    def autocast_parts(self) -> list[nn.Module]:
        """The parts that compute in autocast's precision under bf16 autocast: f_H2D. f_PP always computes
        in fp32 (PosePrior.forward)."""
        return [self.h2d]

    def forward(self, images: torch.Tensor, clip_feature: torch.Tensor | None = None, embed: bool = False) -> HandPoseOutput:
        s = self.cfg.input_size
        if images.shape[-2:] != (s, s):
            raise ValueError(f"expected images (B,3,{s},{s}), got {tuple(images.shape)}")
        heatmaps, e1p, e2p = self.h2d(images, clip_feature, embed)
        coords, canonical, rotation = self.pose_prior(heatmaps[-1])
        return HandPoseOutput(heatmaps, coords, e1p, e2p, canonical, rotation)
