"""A fast stand-in for repro.train.run.train_run with the same contract, for the study tests.

Worker processes select it with REPRO_TRAINER=fake_trainer:train (tests/ on PYTHONPATH). Like
train_run it dedupes through MLflow: a FINISHED run tagged with the config hash is returned as
reused, an unfinished one is continued (same run id), so the studies' dedupe and resume go
through a real MLflow store. It imports no torch, so a worker starts in seconds.

$REPRO_FAKE_LOG: a file that gets "start <hash> <pid>" and "end <hash> <pid>" per training (not
per reuse). $REPRO_FAKE_SLEEP: seconds a training takes (default 0); $REPRO_FAKE_AWAIT
("<hash>=<n>,..."): configs whose training also lasts until n trainings of other processes have
started after it (as the log shows; at most AWAIT_TIMEOUT_S): a cell kept in flight until a second
worker has provably worked beside it, however slowly that worker starts. Metrics are made up from the
hash, so they are stable across runs (or given by the caller), and like train_run it logs its
identity record (identity.json: the trainer version and the config, which pair a seed's runs in the
reports), every split's per-sample errors (per_sample/<split>.parquet, whose hand3d EPE is the
split's metric) and PCK curves (pck_curves.json).
"""

import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import Metric

from repro import tracking
from repro.config import TRAINER_VERSION
from repro.tracking import experiment


@dataclass
class FakeResult:
    run_id: str
    config_hash: str
    run_hash: str  # the fake's identity is its config hash: it reads no data
    status: str
    metrics: dict
    reused: bool
    diverged: str = ""


def _log(event: str, config_hash: str) -> None:
    path = os.environ.get("REPRO_FAKE_LOG")
    if path:
        with open(path, "a") as f:  # one short append per line: atomic between processes
            f.write(f"{event} {config_hash} {os.getpid()}\n")


AWAIT_TIMEOUT_S = 120.0


def _await_peers(config_hash: str) -> None:
    wanted = dict(item.split("=") for item in os.environ.get("REPRO_FAKE_AWAIT", "").split(",") if item).get(config_hash)
    if wanted is None:
        return
    me, deadline = str(os.getpid()), time.monotonic() + AWAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        lines = Path(os.environ["REPRO_FAKE_LOG"]).read_text().splitlines()
        mine = max(i for i, line in enumerate(lines) if line == f"start {config_hash} {me}")
        if sum(line.startswith("start ") and line.split()[2] != me for line in lines[mine + 1 :]) >= int(wanted):
            return
        time.sleep(0.1)


def fake_metrics(cfg) -> dict:
    base = 30 + int(cfg.hash[:4], 16) / 65536 * 20
    return {"val/epe_mm": base, **{f"{t}/epe_mm": base + 5 * (i + 1) for i, t in enumerate(cfg.targets)}}


def fake_samples(epe: float, images: int, split: str, config_hash: str) -> pd.DataFrame:
    """Per-image errors of 21 joints whose hand3d EPE is `epe`: the visibility is the split's (the
    same images for every run; the first image shows every joint, the last none), the errors scatter
    around `epe` by the config, shifted so that every joint's mean over its visible images is `epe`."""
    visible = np.random.default_rng(zlib.crc32(split.encode())).random((images, 21)) < 0.8
    visible[0], visible[-1] = True, False
    noise = np.random.default_rng(int(config_hash[:8], 16)).normal(0.0, 3.0, (images, 21))
    errors = epe + noise - (noise * visible).sum(0) / visible.sum(0)
    return pd.DataFrame(
        {"sample": range(images), **{f"err_mm_{k}": errors[:, k] for k in range(21)}, **{f"vis_{k}": visible[:, k] for k in range(21)}}
    )


def _log_samples(client, run_id: str, cfg, metrics: dict) -> None:
    splits = {key.removesuffix("/epe_mm"): value for key, value in metrics.items() if key.endswith("/epe_mm")}
    samples = {split: fake_samples(epe, cfg.n_val if split == "val" else cfg.n_test, split, cfg.hash) for split, epe in splits.items()}
    thresholds = np.arange(51.0)
    curves = {"threshold_mm": thresholds}
    with tempfile.TemporaryDirectory() as tmp:
        for split, frame in samples.items():
            frame.to_parquet(Path(tmp) / f"{split}.parquet", index=False)
            errors, visible = frame.filter(like="err_mm_").to_numpy(), frame.filter(like="vis_").to_numpy()
            below = (errors[:, :, None] <= thresholds) & visible[:, :, None]
            curves[f"pck/{split}"] = (below.sum(0) / visible.sum(0)[:, None]).mean(0)
        client.log_artifacts(run_id, tmp, "per_sample")
    client.log_table(run_id, pd.DataFrame(curves), "pck_curves.json")


def train(cfg, parent_run_id=None, extra_tags=None, metrics=None):
    client = tracking.client()
    exp = experiment("repro-train")
    runs = client.search_runs([exp], filter_string=f"tags.config_hash = '{cfg.hash}'", order_by=["attributes.start_time DESC"])
    done = [r for r in runs if r.info.status == "FINISHED"]
    if done:
        return FakeResult(done[0].info.run_id, cfg.hash, cfg.hash, "FINISHED", dict(done[0].data.metrics), reused=True)
    _log("start", cfg.hash)
    tags = {"config_hash": cfg.hash, **(extra_tags or {})}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_id = runs[0].info.run_id if runs else client.create_run(exp, tags=tags).info.run_id
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.update_run(run_id, status="RUNNING")
    time.sleep(float(os.environ.get("REPRO_FAKE_SLEEP", "0")))
    _await_peers(cfg.hash)
    metrics = metrics or fake_metrics(cfg)
    client.log_dict(run_id, {"trainer_version": TRAINER_VERSION, "config": cfg.to_dict()}, "identity.json")
    _log_samples(client, run_id, cfg, metrics)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    client.set_terminated(run_id, "FINISHED")
    _log("end", cfg.hash)
    return FakeResult(run_id, cfg.hash, cfg.hash, "FINISHED", metrics, reused=False)
