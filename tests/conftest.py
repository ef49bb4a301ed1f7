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
