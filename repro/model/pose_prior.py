"""f_PP, the PosePrior net (supplement Table 2, after Zimmermann & Brox 2017).

Input: the last-stage heatmap (B,21,h,w). Two parallel streams:
  stream A (canonical pose): six 3x3 convs (21, 32 s2, 64, 64 s2, 128, 128 s2) + LeakyReLU ->
      flatten -> FC512 + LReLU, FC512 + LReLU, FC63 -> canonical (B,21,3);
  stream B (viewpoint): six 3x3 convs (64, 64 s2, 128, 128 s2, 256, 256 s2) + LeakyReLU ->
      flatten -> FC256 + LReLU, FC128 + LReLU -> three FC(1) heads -> axis-angle (B,3)
      -> R = rodrigues(axis-angle), the angle first bounded below pi unless cfg.viewpoint = "axis-angle".
Output c = canonical @ R (B,21,3): root-relative coordinates in units of the reference bone
(see repro.geometry3d for the frame conventions). Widths scale with cfg.prior_width (cfg.width
unless set; not the 63 / 1 outputs); the flatten sizes follow from the heatmap size (three
stride-2 convs with padding 1: n -> ceil(n / 2), i.e. 32 -> 4 at 256 px, never below 1).
"""

from contextlib import nullcontext

import torch
from torch import nn

from repro.data.joints import N_JOINTS
from repro.geometry3d import bounded_angle, rodrigues
from repro.model.config import ModelConfig
from repro.model.heatmap_net import conv_block


def _as_given(axis_angle: torch.Tensor) -> torch.Tensor:
    return axis_angle


# cfg.viewpoint -> the map from the heads' output to the axis-angle of R (names: repro.model.config.VIEWPOINTS)
VIEWPOINTS = {"bounded": bounded_angle, "axis-angle": _as_given}


def _down(n: int) -> int:
    return (n - 1) // 2 + 1  # 3x3 conv, stride 2, padding 1


def _stream(cin: int, widths: list[int], slope: float) -> nn.Sequential:
    layers = []
    for i, w in enumerate(widths):
        layers.append(conv_block(cin, w, slope, stride=2 if i % 2 else 1))
        cin = w
    return nn.Sequential(*layers)


class PosePrior(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, s = cfg.prior_ch, cfg.leaky_slope
        side = _down(_down(_down(cfg.heatmap_size)))
        self.conv_a = _stream(N_JOINTS, [c(21), c(32), c(64), c(64), c(128), c(128)], s)
        self.fc_a = nn.Sequential(
            nn.Linear(c(128) * side * side, c(512)),
            nn.LeakyReLU(s),
            nn.Linear(c(512), c(512)),
            nn.LeakyReLU(s),
            nn.Linear(c(512), 3 * N_JOINTS),
        )
        self.conv_b = _stream(N_JOINTS, [c(64), c(64), c(128), c(128), c(256), c(256)], s)
        self.fc_b = nn.Sequential(
            nn.Linear(c(256) * side * side, c(256)),
            nn.LeakyReLU(s),
            nn.Linear(c(256), c(128)),
            nn.LeakyReLU(s),
        )
        self.ux = nn.Linear(c(128), 1)
        self.uy = nn.Linear(c(128), 1)
        self.uz = nn.Linear(c(128), 1)
        self.viewpoint = VIEWPOINTS[cfg.viewpoint]

    def forward(self, heatmap: torch.Tensor):
        """heatmap (B,21,h,w) -> (coords (B,21,3), canonical (B,21,3), rotation (B,3,3)). Always in fp32, also
        under bf16 autocast: f_PP is a small share of the FLOPs, and in bf16 oneDNN gave the last stride-2 conv
        of each stream (1-2 pixel maps) garbage weight gradients, up to 1e33, on an AVX512-BF16 CPU."""
        device = heatmap.device.type
        with torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext():
            heatmap = heatmap.float()
            canonical = self.fc_a(self.conv_a(heatmap).flatten(1)).reshape(-1, N_JOINTS, 3)
            v = self.fc_b(self.conv_b(heatmap).flatten(1))
            axis_angle = torch.cat([self.ux(v), self.uy(v), self.uz(v)], dim=1)
            rotation = rodrigues(self.viewpoint(axis_angle))
            return canonical @ rotation, canonical, rotation
