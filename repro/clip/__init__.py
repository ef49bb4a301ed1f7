"""The frozen CLIP of the paper (Sec. 3.2-3.3): prompts, encoders, the suite's own small CLIP and the
feature cache. Importing this package is cheap (no torch); the submodules load what they need."""

from repro.clip.errors import ClipError

__all__ = ["ClipError"]
