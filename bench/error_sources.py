"""Where a trained run's 3D error comes from: the viewpoint or the pose (run by hand).

    .venv/bin/python bench/error_sources.py RUN_ID [--n 512]

f_PP predicts c = canonical @ R. For each split the run evaluates (its first --n images) this prints
the run's EPE beside two references on the same images (mm, hand3d protocol, visible joints):
- "mean pose": the mean training pose in camera coordinates, the floor every run logs;
- "mean canonical, true view": the mean training pose in the CANONICAL frame, turned by each image's
  true viewpoint R. It knows the view and nothing of the pose: when the run's EPE is far above it, most
  of the run's error is the viewpoint, not the hand's articulation.
"""

import argparse

import torch

from repro.config import RunConfig
from repro.geometry3d import normalize_pose
from repro.metrics import epe_mm, predictions_to_mm
from repro.train.data import evaluated_splits, load_split
from repro.train.evaluate import predict
from repro.train.finished import load_run_model


def visible_epe(coords: torch.Tensor, xyz: torch.Tensor, visible: torch.Tensor) -> float:
    pred, gt = predictions_to_mm(coords, xyz)
    return float((epe_mm(pred, gt) * visible).sum() / visible.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id")
    parser.add_argument("--n", type=int, default=512)
    args = parser.parse_args()
    cfg: RunConfig
    cfg, model = load_run_model(args.run_id)
    device = next(model.parameters()).device
    train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
    rel, _, _, canonical = normalize_pose(train.xyz)
    mean_rel, mean_canonical = rel.mean(0), canonical.mean(0)
    splits = [(cfg.source, "val")] + [(name, "test") for name in evaluated_splits(cfg.targets)]
    print(f"{'split':18s} {'run':>8s} {'mean pose':>10s} {'mean canonical, true view':>26s}")
    for name, role in splits:
        split = load_split(name, role, {"val": cfg.n_val, "test": cfg.n_test}[role], cfg.image_size, cfg.data_root)
        n = min(args.n, len(split))
        xyz, visible = split.xyz[:n], split.visible[:n]
        coords = predict(model, split.images[:n], cfg.model.input_size, device, cfg.precision, cfg.memory_format)
        true_view = normalize_pose(xyz)[2]
        print(
            f"{name:18s} {visible_epe(coords, xyz, visible):8.1f} {visible_epe(mean_rel.expand_as(xyz), xyz, visible):10.1f} "
            f"{visible_epe(mean_canonical @ true_view, xyz, visible):26.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
