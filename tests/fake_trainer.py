"""A fast stand-in for repro.train.run.train_run with the same contract, for the study tests.

Worker processes select it with REPRO_TRAINER=fake_trainer:train (tests/ on PYTHONPATH). Like
train_run it dedupes through MLflow: a FINISHED run tagged with the config hash is returned as
reused, an unfinished one is continued (same run id), so the studies' dedupe and resume go
through a real MLflow store. It imports no torch, so a worker starts in seconds.

$REPRO_FAKE_LOG: a file that gets "start <hash> <pid>" and "end <hash> <pid>" per training (not
per reuse). $REPRO_FAKE_SLEEP: seconds a training takes (default 0). Metrics are made up from the
hash, so they are stable across runs.
"""

import os
import time
from dataclasses import dataclass

from mlflow.entities import Metric

from repro import tracking
from repro.tracking import experiment


@dataclass
class FakeResult:
    run_id: str
    config_hash: str
    run_hash: str  # the fake's identity is its config hash: it reads no data
    status: str
    metrics: dict
    reused: bool


def _log(event: str, config_hash: str) -> None:
    path = os.environ.get("REPRO_FAKE_LOG")
    if path:
        with open(path, "a") as f:  # one short append per line: atomic between processes
            f.write(f"{event} {config_hash} {os.getpid()}\n")


def fake_metrics(cfg) -> dict:
    base = 30 + int(cfg.hash[:4], 16) / 65536 * 20
    return {"val/epe_mm": base, **{f"{t}/epe_mm": base + 5 * (i + 1) for i, t in enumerate(cfg.targets)}}


def train(cfg, parent_run_id=None, extra_tags=None):
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
    metrics = fake_metrics(cfg)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    client.set_terminated(run_id, "FINISHED")
    _log("end", cfg.hash)
    return FakeResult(run_id, cfg.hash, cfg.hash, "FINISHED", metrics, reused=False)
