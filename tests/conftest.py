"""Shared test set-up. No test may reach the network: Hugging Face / open_clip downloads are off."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once

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


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """Rendered data shared by one test module (rendering is the slow part of tiny trainings)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def store(tmp_path, monkeypatch, shared_cache):
    """A fresh MLflow store and study journal per test, over the module's rendered data."""
    monkeypatch.setenv("REPRO_CACHE", str(shared_cache))
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    monkeypatch.delenv("REPRO_TRACKING_URI", raising=False)
    monkeypatch.delenv("REPRO_TRAINER", raising=False)
    return tmp_path / "mlruns"
