"""Shared test set-up. No test may reach the network: Hugging Face / open_clip downloads are off."""

import os
import shutil

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once
# fp32 on every CPU: run identities and expected losses must not depend on a timing (repro.bf16)
os.environ["REPRO_CPU_BF16"] = "0"

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from a second intra-op thread, and spinning threads on two shared cores
# made tiny trainings 4x slower; one thread also keeps results independent of the core count.
torch.set_num_threads(1)


@pytest.fixture
def repro_cache(tmp_path, monkeypatch):
    """A fresh, empty cache_dir() for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("REPRO_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """Rendered data and synthclip:tiny, built once per session (per pytest-xdist worker): rendering and
    pre-training are the slow part of tiny trainings. Every entry is keyed by what it holds, so tests
    can share them; a test that damages or counts cache entries uses repro_cache."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def empty_tracking_db(tmp_path_factory):
    """An MLflow SQLite store with its tables made, copied into every test's store: MLflow's schema
    migrations take about 2 s per new store."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("tracking") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, shared_cache, empty_tracking_db):
    """A fresh MLflow store and study journal per test, over the session's rendered data."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(empty_tracking_db, tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("REPRO_CACHE", str(shared_cache))
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    monkeypatch.delenv("REPRO_TRACKING_URI", raising=False)
    monkeypatch.delenv("REPRO_TRAINER", raising=False)
    return tmp_path / "mlruns"
