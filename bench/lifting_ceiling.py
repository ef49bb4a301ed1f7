"""How far f_PP alone gets when the 2D heatmaps are perfect (run by hand).

    .venv/bin/python bench/lifting_ceiling.py [--preset small] [--epochs 6] [--noise-px 0 8]

Trains the preset's f_PP (its widths and heatmap grid, its init, lr and schedule, batch 32) from
scratch on Gaussian heatmaps drawn at the ground-truth joints of the source's training split, with
L_Pose alone, and prints the source validation EPE (mm, hand3d protocol, visible joints) after each
epoch. --noise-px adds Gaussian noise of that many input pixels to every joint before its heatmap is
drawn (training and validation alike): a stand-in for a heatmap net's 2D error. One line per epoch
and noise level; the gap between this and a trained run's EPE is what its heatmaps cost.
"""

import argparse
import dataclasses

import torch

from repro.geometry3d import normalize_pose
from repro.losses import pose_loss
from repro.metrics import epe_mm, predictions_to_mm
from repro.model.hand_pose import HandPoseModel
from repro.presets import preset_config
from repro.train.data import load_split
from repro.train.loop import scheduled_lr, seed_everything
from repro.train.objectives import Baseline, Batch

BATCH = 32


def heatmaps(cfg, uv: torch.Tensor, visible: torch.Tensor, noise_px: float, generator: torch.Generator) -> torch.Tensor:
    """The training step's heatmap targets (Baseline.targets) of joints moved by noise_px input pixels."""
    if noise_px:
        uv = uv + noise_px * (cfg.image_size / cfg.model.input_size) * torch.randn(uv.shape, generator=generator)
    return Baseline(cfg).targets(Batch(None, uv, visible, torch.zeros(*uv.shape[:2], 3)), cfg.model.heatmap_size)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--noise-px", type=float, nargs="+", default=[0.0, 8.0])
    args = parser.parse_args()
    cfg = preset_config(args.preset, {"mode": "baseline", "batch_size": BATCH, "epochs": args.epochs})
    train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
    val = load_split(cfg.source, "val", cfg.n_val, cfg.image_size, cfg.data_root)
    val_target = normalize_pose(val.xyz)[0]
    n_batches = len(train) // BATCH
    for noise in args.noise_px:
        seed_everything(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        prior = HandPoseModel(dataclasses.replace(cfg.model, branch2=False)).pose_prior
        optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        val_heat = heatmaps(cfg, val.uv, val.visible, noise, generator)
        for epoch in range(args.epochs):
            prior.train()
            order = torch.randperm(len(train))
            for b in range(n_batches):
                idx = order[b * BATCH : (b + 1) * BATCH]
                for group in optimizer.param_groups:
                    group["lr"] = scheduled_lr(cfg, epoch * n_batches + b, args.epochs * n_batches)
                coords = prior(heatmaps(cfg, train.uv[idx], train.visible[idx], noise, generator))[0]
                loss = pose_loss(coords, normalize_pose(train.xyz[idx])[0])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            prior.eval()
            with torch.no_grad():
                coords = prior(val_heat)[0]
            pred, gt = predictions_to_mm(coords, val.xyz)
            epe = (epe_mm(pred, gt) * val.visible).sum() / val.visible.sum()
            print(
                f"noise {noise:g} px, epoch {epoch + 1}/{args.epochs}: val EPE {epe:.2f} mm (L_Pose on val {pose_loss(coords, val_target):.4f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
