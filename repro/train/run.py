"""One function from a frozen config to a finished, tracked run (`train_run`).

A run is identified by its run hash (tag `run_hash`, repro.train.identity): the config, the trainer
version, the digests of its data and its CLIP weights. A FINISHED run with the same run hash is
reused, an unfinished one is resumed from its last epoch checkpoint, and a run whose loss diverges
ends as FAILED with the reason in the tag `failure_reason`; a run of the same config on other data
or CLIP weights is never touched. Checkpoints live under mlruns/checkpoints/<run hash>/ and the last
one is logged as an artifact.
"""

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import torch
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource

from repro.config import RunConfig
from repro.data.registry import dataset_root
from repro.geometry3d import normalize_pose
from repro.paths import cache_dir
from repro.tracking import SPLIT_METRICS, TRAIN_EXPERIMENT, client, experiment, git_state, mlruns_dir, use_store
from repro.train.checkpoints import load_checkpoint, save_checkpoint
from repro.train.cost import Meter, device_tags
from repro.train.data import cv_split, evaluated_splits, split_tensors
from repro.train.evaluate import device_for_training, evaluate_split, pose_metrics
from repro.train.identity import identity, identity_hash, open_inputs
from repro.train.loop import ClipFeatures, TrainingDiverged, batch_inputs, new_state, train_epoch


@dataclass
class RunResult:
    run_id: str
    config_hash: str
    run_hash: str
    status: str  # FINISHED or FAILED
    metrics: dict
    reused: bool
    diverged: str = ""  # FAILED because a loss diverged: the guard's message


MODE_NAMES = {"baseline": "Baseline", "ie": "IE", "te": "TE", "iete": "IE+TE"}  # the paper's (Table 4)


def run_name(cfg: RunConfig) -> str:
    """A run's name in the MLflow UI unless a study names it: what tells the trainings of a preset
    apart, e.g. "IE+TE r=0.6 concat seed 0", "Baseline normal-supervised seed 1"."""
    parts = [MODE_NAMES[cfg.mode]]
    if cfg.mode == "iete":
        parts.append(f"r={cfg.ratio:g}")
    if cfg.uses_clip:
        parts.append(cfg.model.fusion)
    if cfg.augment != "none":
        parts.append(cfg.augment)
    if cfg.cv_folds:
        parts.append(f"fold {cfg.cv_fold + 1}/{cfg.cv_folds}")
    return " ".join([*parts, f"seed {cfg.seed}"])


def find_runs(run_hash: str) -> list:
    """Runs of this identity, newest first."""
    exp = experiment(TRAIN_EXPERIMENT)
    return client().search_runs([exp], filter_string=f"tags.run_hash = '{run_hash}'", order_by=["attributes.start_time DESC"])


def clip_features(encoder, train) -> ClipFeatures | None:
    if encoder is None:
        return None
    from repro.clip.features import image_features, text_features

    return ClipFeatures(image=image_features(encoder, train.dataset), text=text_features(encoder))


def _identity_tags(record: dict) -> dict:
    tags = {f"data_digest/{role}": d["digest"] for role, d in record["data"].items()}
    if record["clip"] is not None:
        tags.update(clip_identity=record["clip"]["identity"], clip_weights_digest=record["clip"]["weights_digest"])
    return tags


def _log_inputs(splits: dict[str, object], cfg: RunConfig) -> None:
    for context, split in splits.items():
        location = dataset_root(split.name, cfg.data_root) or cache_dir() / "data" / split.name
        # Named, not resolved: MLflow registers the local source twice and warns that a path is
        # ambiguous with itself at every run (mlflow/mlflow#9702).
        source = LocalArtifactDatasetSource(str(location))
        mlflow.log_input(MetaDataset(source, name=f"{split.name}/{split.split}", digest=split.digest[:36]), context=context)


def per_sample_frame(errors_mm: torch.Tensor, visible: torch.Tensor) -> pd.DataFrame:
    """One row per image of a split: its index, every joint's error in mm and its visibility, so that
    any statistic of the run (bootstrap intervals, other protocols) is recomputed without training."""
    err = {f"err_mm_{k}": errors_mm[:, k].double().numpy() for k in range(errors_mm.shape[1])}
    vis = {f"vis_{k}": visible[:, k].bool().numpy() for k in range(visible.shape[1])}
    return pd.DataFrame({"sample": range(len(errors_mm)), **err, **vis})


def _evaluate(model, cfg, device, val, targets, mean_pose) -> tuple[dict, pd.DataFrame, dict[str, pd.DataFrame]]:
    metrics, curves, per_sample = {}, {}, {}
    for key, split in [("val", val)] + [(t.name, t) for t in targets]:
        result = evaluate_split(model, split, cfg.model.input_size, device, cfg.precision, cfg.memory_format)
        per_sample[key] = per_sample_frame(result["errors_mm"], split.visible)
        for name in SPLIT_METRICS:
            metrics[f"{key}/{name}"] = result[name]
        curves[key] = result["pck_curve"].numpy()
        thresholds = result["pck_thresholds_mm"].numpy()
        # What predicting the mean training pose scores on this split: the floor a trained model must
        # beat, on the same protocol as <split>/epe_mm (visible joints), and over all joints.
        floor = pose_metrics(mean_pose.expand(len(split), -1, -1), split.xyz, split.visible)
        metrics[f"{key}/epe_mean_pose_mm"] = floor["epe_mm"]
        metrics[f"{key}/epe_mean_pose_all_mm"] = floor["epe_all_mm"]
    return metrics, pd.DataFrame({"threshold_mm": thresholds, **{f"pck/{k}": v for k, v in curves.items()}}), per_sample


def train_run(cfg: RunConfig, parent_run_id: str | None = None, extra_tags: dict | None = None) -> RunResult:
    meter = Meter()
    inputs = open_inputs(cfg)
    record = identity(cfg, inputs)
    key = identity_hash(record)
    runs = find_runs(key)
    done = [r for r in runs if r.info.status == "FINISHED"]
    if done:
        run = done[0]
        print(f"reusing finished run {run.info.run_id} for config {cfg.hash} (run hash {key})", file=sys.stderr)
        return RunResult(run.info.run_id, cfg.hash, key, "FINISHED", dict(run.data.metrics), reused=True)
    resume_id = runs[0].info.run_id if runs else None
    earlier = dict(runs[0].data.metrics) if runs else {}  # a resumed run's cost so far

    device = device_for_training()
    train = split_tensors(inputs.splits["train"])
    clip = clip_features(inputs.encoder, train)
    restyled = split_tensors(inputs.splits["restyled"]) if cfg.restyled else None
    if cfg.cv_folds:  # validate on a fold of the source training split; never look at a target
        train, val, held_out = cv_split(train, cfg.cv_folds, cfg.cv_fold)
        clip = ClipFeatures(clip.image[~held_out], clip.text) if clip is not None else None
        restyled = restyled.subset(~held_out, f"cv{cfg.cv_fold}of{cfg.cv_folds}-train") if restyled is not None else None
    else:
        val = split_tensors(inputs.splits["val"])
    targets = [split_tensors(inputs.splits[t]) for t in evaluated_splits(cfg.targets)]

    clip_dim = clip.image.shape[1] if clip is not None else cfg.model.clip_dim  # the encoder decides
    state = new_state(cfg, clip_dim, device)
    train_inputs = batch_inputs(cfg, train, device)
    restyled_inputs = batch_inputs(cfg, restyled, device) if restyled is not None else None
    ckpt = mlruns_dir() / "checkpoints" / key / "last.pt"

    tags = {
        "run_hash": key,
        "config_hash": cfg.hash,
        "precision_effective": record["precision_effective"],
        "preset": cfg.preset,
        "repro.preset": cfg.preset,
        "repro.seed": str(cfg.seed),
        "mlflow.runName": run_name(cfg),
        **device_tags(device),
        **git_state(),
        **_identity_tags(record),
        **(extra_tags or {}),
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    exp = experiment(TRAIN_EXPERIMENT)
    use_store()
    with mlflow.start_run(run_id=resume_id, experiment_id=exp, run_name=None if resume_id else tags["mlflow.runName"]) as run:
        mlflow.set_tags(tags)
        if resume_id is None:
            mlflow.log_params(cfg.flat())
            mlflow.log_text(cfg.canonical_json(), "config.json")
            mlflow.log_dict(record, "identity.json")
            _log_inputs({"training": train, "validation": val, **{f"target:{t.name}": t for t in targets}}, cfg)
        if ckpt.exists():
            load_checkpoint(ckpt, state)
            print(f"resuming run {run.info.run_id} after epoch {state.epoch}", file=sys.stderr)
        try:
            for _ in range(state.epoch, cfg.epochs):
                losses = train_epoch(cfg, state, train, clip, device, meter.step, train_inputs, restyled_inputs)
                state.epoch += 1
                state.history.append(losses)
                # the cost so far with every epoch, so that a killed run's sessions add up when it resumes
                mlflow.log_metrics({**{f"train/{k}": v for k, v in losses.items()}, **meter.metrics(earlier)}, step=state.epoch)
                save_checkpoint(ckpt, state)
        except TrainingDiverged as err:
            mlflow.log_metrics(meter.metrics(earlier), step=state.epoch)
            mlflow.set_tag("failure_reason", str(err))
            mlflow.end_run(status="FAILED")
            print(f"run {run.info.run_id} FAILED: {err}", file=sys.stderr)
            return RunResult(run.info.run_id, cfg.hash, key, "FAILED", {}, reused=False, diverged=str(err))

        mean_pose = normalize_pose(train.xyz)[0].mean(0, keepdim=True)
        metrics, pck, per_sample = _evaluate(state.model, cfg, device, val, targets, mean_pose)
        mlflow.log_metrics(metrics)
        mlflow.log_table(pck, artifact_file="pck_curves.json")
        with tempfile.TemporaryDirectory() as tmp:
            for split_name, frame in per_sample.items():
                frame.to_parquet(Path(tmp) / f"{split_name}.parquet", index=False)
            mlflow.log_artifacts(tmp, artifact_path="per_sample")
        mlflow.log_artifact(str(ckpt), artifact_path="checkpoint")
        mlflow.log_metrics(meter.metrics(earlier), step=state.epoch)
    return RunResult(run.info.run_id, cfg.hash, key, "FINISHED", metrics, reused=False)
