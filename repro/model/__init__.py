"""The hand pose network: f_H2D (2D heatmaps, CLIP-fusion Branch2) and f_PP (PosePrior).

config       ModelConfig, the sizes and switches (pure data: importing it does not load torch)
heatmap_net  f_H2D: trunk, Branch1 (three CPM stages), Branch2 and the ProjectionHead
pose_prior   f_PP: canonical and viewpoint streams, Rodrigues rotation
hand_pose    HandPoseModel = f_PP(f_H2D(x)) and its HandPoseOutput
"""
