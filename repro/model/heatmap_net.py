"""f_H2D, the 2D heatmap net (supplement Table 1): a VGG trunk, a 3-stage convolutional pose
machine (Branch1) and, for training only, the CLIP-fusion embedding branch (Branch2).

Module layout mirrors the table so forward hooks can check every layer:
  trunk[0..10]      L1-L11   (conv blocks and max-pools, -> S/8 x S/8 x 256)
  stage1[0..8]      L20-L28  (7 conv blocks -> "L26 features" = stage1[6], then L27, L28)
  stage2[0..7]      L30-L37  (7 conv128 + conv21; input concat(L26, heatmap 1), L29: 128 + 21 = 149)
  stage3[0..6]      L39-L45  (6 conv128 + conv21; input concat(L26, heatmap 2), L38)
  Branch2: conv12 (L12), conv13 (L13), pool14 (L14), flatten (L15), fc_e1 (L16), fc_e2 (L18 after
  the L17 concat, or the sum path), projection (the shared ProjectionHead applied to L19's pair).
Decisions (stated in the report):
- Every conv is 3x3, stride 1, padding 1, followed by LeakyReLU, as the table lists, including
  the 21-channel heatmap outputs (L28, L37, L45: "Conv. + LeakyReLU"); the targets are >= 0,
  so the leaky activation on the heatmaps is harmless.
- Max-pools are 2x2, stride 2.
- Branch2: L12 and L13 are plain convs (3x3, stride 2, padding 1, no activation: the table lists
  "Conv." only); L14 is a global max-pool (AdaptiveMaxPool2d(1); the 8x8 pool at 256 px);
  L16 / L18 are plain linear layers; the ProjectionHead is Linear -> ReLU -> Linear.
- Fusion "concat": e2 = FC'(concat(h, f_CLIP)). "sum": e2 = FC''(h) + M f_CLIP, M = identity when
  clip_dim equals the e-width (512 x width) and a learned Linear(clip_dim, e-width) otherwise.
"""

import torch
from torch import nn

from repro.data.joints import N_JOINTS
from repro.model.config import ModelConfig


def conv_block(cin: int, cout: int, slope: float, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1)]
    if act:  # in place: a conv's backward reads its input, not its output (same values, less memory traffic)
        layers.append(nn.LeakyReLU(slope, inplace=True))
    return nn.Sequential(*layers)


class ProjectionHead(nn.Module):
    """e -> e' : Linear(d, d) -> ReLU -> Linear(d, proj_dim); shared by e1 and e2."""

    def __init__(self, dim: int, proj_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj_dim))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


class Branch2(nn.Module):
    """L12-L19: the embedding branch that fuses f_CLIP (training only)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, s = cfg.ch, cfg.leaky_slope
        self.fusion = cfg.fusion
        h_dim, e_dim = c(1024), c(512)
        self.conv12 = conv_block(c(256), c(512), s, stride=2, act=False)
        self.conv13 = conv_block(c(512), h_dim, s, stride=2, act=False)
        self.pool14 = nn.AdaptiveMaxPool2d(1)
        self.fc_e1 = nn.Linear(h_dim, e_dim)  # L16
        if cfg.fusion == "concat":
            self.fc_e2 = nn.Linear(h_dim + cfg.clip_dim, e_dim)  # L17 concat -> L18
            self.clip_map = None
        else:
            self.fc_e2 = nn.Linear(h_dim, e_dim)  # FC'' of the sum path
            self.clip_map = None if cfg.clip_dim == e_dim else nn.Linear(cfg.clip_dim, e_dim)
        self.projection = ProjectionHead(e_dim, cfg.proj_dim)

    def forward(self, trunk_features: torch.Tensor, clip_feature: torch.Tensor | None):
        """(e1', e2'); e2' is None without a CLIP feature (Table 6's augmented-view positive uses e1' only)."""
        h = self.pool14(self.conv13(self.conv12(trunk_features))).flatten(1)  # L14-L15
        e1 = self.fc_e1(h)
        if clip_feature is None:
            return self.projection(e1), None
        clip_feature = clip_feature.to(h.dtype)
        if self.fusion == "concat":
            e2 = self.fc_e2(torch.cat([h, clip_feature], dim=1))
        else:
            f = clip_feature if self.clip_map is None else self.clip_map(clip_feature)
            e2 = self.fc_e2(h) + f
        return self.projection(e1), self.projection(e2)


class HeatmapNet(nn.Module):
    """f_H2D: image (B,3,S,S) -> 3 stage heatmaps (B,21,S/8,S/8) (+ e1', e2' with Branch2)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, s = cfg.ch, cfg.leaky_slope
        pool = lambda: nn.MaxPool2d(2, 2)  # noqa: E731
        self.trunk = nn.Sequential(
            conv_block(3, c(64), s),
            conv_block(c(64), c(64), s),
            pool(),  # L1-L3
            conv_block(c(64), c(128), s),
            conv_block(c(128), c(128), s),
            pool(),  # L4-L6
            conv_block(c(128), c(256), s),
            conv_block(c(256), c(256), s),  # L7-L8
            conv_block(c(256), c(256), s),
            conv_block(c(256), c(256), s),
            pool(),  # L9-L11
        )
        widths = [c(512), c(512), c(256), c(256), c(256), c(256), c(128)]  # L20-L26
        layers, cin = [], c(256)
        for w in widths:
            layers.append(conv_block(cin, w, s))
            cin = w
        layers += [conv_block(cin, c(512), s), conv_block(c(512), N_JOINTS, s)]  # L27, L28
        self.stage1 = nn.Sequential(*layers)
        self.n_features = c(128)
        self.stage2 = self._refine_stage(cfg, 7)  # L30-L36, L37
        self.stage3 = self._refine_stage(cfg, 6)  # L39-L44, L45: one conv128 fewer, as Table 1 lists
        self.branch2 = Branch2(cfg) if cfg.branch2 else None  # built last: see HandPoseModel on paired rows

    @staticmethod
    def _refine_stage(cfg: ModelConfig, n_convs: int) -> nn.Sequential:
        """A CPM refinement stage: `n_convs` conv128 blocks, then the conv21 heatmap block."""
        c, s = cfg.ch, cfg.leaky_slope
        cin = c(128) + N_JOINTS  # L29 / L38 concat: 149 at width 1
        layers = []
        for _ in range(n_convs):
            layers.append(conv_block(cin, c(128), s))
            cin = c(128)
        layers.append(conv_block(cin, N_JOINTS, s))
        return nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, clip_feature: torch.Tensor | None = None, embed: bool = False):
        """Returns (heatmaps [3 x (B,21,h,w)], e1p or None, e2p or None). Branch2 runs when the net
        has one and a CLIP feature is given, or when `embed` asks for e1' alone."""
        x = self.trunk(images)  # L11
        feats = self.stage1[:7](x)  # L26 features
        hm1 = self.stage1[7:](feats)
        hm2 = self.stage2(torch.cat([feats, hm1], dim=1))
        hm3 = self.stage3(torch.cat([feats, hm2], dim=1))
        e1p = e2p = None
        if self.branch2 is not None and (clip_feature is not None or embed):
            e1p, e2p = self.branch2(x, clip_feature)
        return [hm1, hm2, hm3], e1p, e2p
