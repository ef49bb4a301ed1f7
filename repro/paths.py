"""Where the suite keeps its generated files. Relative to the working directory unless overridden."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of on-disk caches (rendered datasets, CLIP checkpoints, feature caches): $REPRO_CACHE or ./.cache."""
    return Path(os.environ.get("REPRO_CACHE", ".cache")).absolute()
