"""The hand pose network: f_H2D (2D heatmaps, CLIP-fusion Branch2) and f_PP (PosePrior)."""

from repro.model.config import ModelConfig
from repro.model.hand_pose import HandPoseModel, HandPoseOutput
from repro.model.heatmap_net import Branch2, HeatmapNet, ProjectionHead
from repro.model.pose_prior import PosePrior

__all__ = [
    "ModelConfig", "HandPoseModel", "HandPoseOutput", "HeatmapNet", "Branch2", "ProjectionHead", "PosePrior",
]  # fmt: skip
