"""repro: a reproduction suite for "Image-free Domain Generalization via CLIP for 3D Hand Pose
Estimation" (WACV 2023). The package reads as its architecture: data -> clip -> model -> train ->
studies -> report."""

__version__ = "0.1.0"
