"""One function from a frozen config to a finished, tracked run (`train_run`).

A run is identified by its config hash (tag `config_hash`): a FINISHED run with the same hash is
reused, an unfinished one is resumed from its last epoch checkpoint, and a run whose loss diverges
ends as FAILED with the reason in the tag `failure_reason`. Checkpoints live under
mlruns/checkpoints/<hash>/ and the last one is logged as an artifact.
"""

import sys
from dataclasses import dataclass

import mlflow
import pandas as pd
import torch
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.tracking import MlflowClient

from repro.config import RunConfig
from repro.geometry3d import normalize_pose
from repro.paths import cache_dir
from repro.tracking import SPLIT_METRICS, TRAIN_EXPERIMENT, experiment, git_state, mlruns_dir
from repro.train.data import cv_split, load_split
from repro.train.evaluate import evaluate_split, pose_metrics
from repro.train.loop import ClipFeatures, TrainingDiverged, load_checkpoint, new_state, save_checkpoint, train_epoch

EXPERIMENT = TRAIN_EXPERIMENT


@dataclass
class RunResult:
    run_id: str
    config_hash: str
    status: str  # FINISHED or FAILED
    metrics: dict
    reused: bool


def device_for_training() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def find_runs(config_hash: str) -> list:
    """Runs of this config, newest first."""
    exp = experiment(EXPERIMENT)
    return MlflowClient().search_runs([exp], filter_string=f"tags.config_hash = '{config_hash}'", order_by=["attributes.start_time DESC"])


def _clip_features(cfg: RunConfig, train) -> tuple[ClipFeatures | None, dict]:
    if not cfg.uses_clip:
        return None, {}
    from repro.clip.encoders import build_encoder
    from repro.clip.features import image_features, text_features

    encoder = build_encoder(cfg.clip, cfg.clip_checkpoint)
    feats = ClipFeatures(image=image_features(encoder, train.dataset), text=text_features(encoder))
    return feats, {"clip_identity": encoder.identity, "clip_weights_digest": encoder.weights_digest}


def _log_inputs(splits: dict[str, object], cfg: RunConfig) -> None:
    for context, split in splits.items():
        location = cache_dir() / "data" / split.name if split.name.startswith("synth-") else f"{cfg.data_root}/{split.name}"
        source = resolve_dataset_source(str(location))
        mlflow.log_input(MetaDataset(source, name=f"{split.name}/{split.split}", digest=split.digest[:36]), context=context)


def _evaluate(model, cfg, device, val, targets, mean_pose) -> tuple[dict, pd.DataFrame]:
    metrics, curves = {}, {}
    for key, split in [("val", val)] + [(t.name, t) for t in targets]:
        result = evaluate_split(model, split, cfg.model.input_size, device)
        for name in SPLIT_METRICS:
            metrics[f"{key}/{name}"] = result[name]
        curves[key] = result["pck_curve"].numpy()
        thresholds = result["pck_thresholds_mm"].numpy()
    # What predicting the mean training pose scores: the floor a trained model must beat.
    metrics["val/epe_mean_pose_mm"] = pose_metrics(mean_pose.expand(len(val), -1, -1), val.xyz)["epe_mm"]
    return metrics, pd.DataFrame({"threshold_mm": thresholds, **{f"pck/{k}": v for k, v in curves.items()}})


def train_run(cfg: RunConfig, parent_run_id: str | None = None, extra_tags: dict | None = None) -> RunResult:
    runs = find_runs(cfg.hash)
    done = [r for r in runs if r.info.status == "FINISHED"]
    if done:
        run = done[0]
        print(f"reusing finished run {run.info.run_id} for config {cfg.hash}", file=sys.stderr)
        return RunResult(run.info.run_id, cfg.hash, "FINISHED", dict(run.data.metrics), reused=True)
    resume_id = runs[0].info.run_id if runs else None

    device = device_for_training()
    train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
    clip, clip_tags = _clip_features(cfg, train)
    if cfg.cv_folds:  # validate on a fold of the source training split; never look at a target
        train, val, held_out = cv_split(train, cfg.cv_folds, cfg.cv_fold)
        clip = ClipFeatures(clip.image[~held_out], clip.text) if clip is not None else None
    else:
        val = load_split(cfg.source, "val", cfg.n_val, cfg.image_size, cfg.data_root)
    targets = [load_split(t, "test", cfg.n_test, cfg.image_size, cfg.data_root) for t in cfg.targets]

    clip_dim = clip.image.shape[1] if clip is not None else cfg.model.clip_dim  # the encoder decides
    state = new_state(cfg, clip_dim, device)
    ckpt = mlruns_dir() / "checkpoints" / cfg.hash / "last.pt"

    tags = {"config_hash": cfg.hash, "preset": cfg.preset, "device": str(device), **git_state(), **clip_tags,
            **{f"data_digest/{s.name}": s.digest for s in [train, *targets]}, **(extra_tags or {})}  # fmt: skip
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    exp = experiment(EXPERIMENT)
    run_name = f"{cfg.preset}-{cfg.mode}-{cfg.hash[:8]}"
    with mlflow.start_run(run_id=resume_id, experiment_id=exp, run_name=None if resume_id else run_name) as run:
        mlflow.set_tags(tags)
        if resume_id is None:
            mlflow.log_params(cfg.flat())
            mlflow.log_text(cfg.canonical_json(), "config.json")
            _log_inputs({"training": train, "validation": val, **{f"target:{t.name}": t for t in targets}}, cfg)
        if ckpt.exists():
            load_checkpoint(ckpt, state)
            print(f"resuming run {run.info.run_id} after epoch {state.epoch}", file=sys.stderr)
        try:
            for _ in range(state.epoch, cfg.epochs):
                losses = train_epoch(cfg, state, train, clip, device)
                state.epoch += 1
                state.history.append(losses)
                mlflow.log_metrics({f"train/{k}": v for k, v in losses.items()}, step=state.epoch)
                save_checkpoint(ckpt, state)
        except TrainingDiverged as err:
            mlflow.set_tag("failure_reason", str(err))
            mlflow.end_run(status="FAILED")
            print(f"run {run.info.run_id} FAILED: {err}", file=sys.stderr)
            return RunResult(run.info.run_id, cfg.hash, "FAILED", {}, reused=False)

        mean_pose = normalize_pose(train.xyz)[0].mean(0, keepdim=True)
        metrics, pck = _evaluate(state.model, cfg, device, val, targets, mean_pose)
        mlflow.log_metrics(metrics)
        mlflow.log_table(pck, artifact_file="pck_curves.json")
        mlflow.log_artifact(str(ckpt), artifact_path="checkpoint")
    return RunResult(run.info.run_id, cfg.hash, "FINISHED", metrics, reused=False)
