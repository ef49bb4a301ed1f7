"""synthclip: the suite's own small CLIP, standing in offline for OpenAI's ViT-B/32 (SPEC section 6).

The architecture is open_clip's CLIP class with the config in synthclip.json, registered with
open_clip under the name "synthclip" so every open_clip entry point (create_model, get_tokenizer)
knows it. Sizes are chosen so `repro clip pretrain` trains it in about ten minutes on two CPU cores:
64x64 input, 16-pixel patches (17 tokens: a 4x4 grid is enough for the colours and textures the
prompts name, and costs a quarter of 8-pixel patches), width 192, 4 layers in each tower, 16-token
context (the longest prompt is 14 tokens with its start and end tokens), 256-d joint embedding.
The tokenizer is open_clip's default SimpleTokenizer, whose BPE vocabulary ships with open_clip.

Its weights live in cache_dir()/clip/synthclip/ (written by `repro clip pretrain`).
"""

import json
from pathlib import Path

from repro.paths import cache_dir

MODEL_NAME = "synthclip"
CONFIG_PATH = Path(__file__).with_name("synthclip.json")


def register() -> None:
    """Make "synthclip" an open_clip model name (idempotent)."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def model_config() -> dict:
    return json.loads(CONFIG_PATH.read_text())


def checkpoint_dir() -> Path:
    return cache_dir() / "clip" / MODEL_NAME


def checkpoint_path() -> Path:
    return checkpoint_dir() / "synthclip.pt"


def manifest_path() -> Path:
    return checkpoint_dir() / "manifest.json"
