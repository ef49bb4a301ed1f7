"""synthclip: the suite's own small CLIP, standing in offline for OpenAI's ViT-B/32 (SPEC section 6).

The architecture is open_clip's CLIP class with the config in synthclip.json, registered with
open_clip under the name "synthclip" so every open_clip entry point (create_model, get_tokenizer)
knows it: 64x64 input to open_clip's ModifiedResNet image tower (CLIP's RN50 design: three-conv
stem, bottleneck stages of 1, 2, 2, 1 blocks at base width 32, attention pooling), a text
transformer of width 192 and 4 layers with a 16-token context (the longest prompt is 14 tokens with
its start and end tokens), 256-d joint embedding. The image tower was a ViT with 8-pixel patches
until recipe version 3; at 64 px it could not tell the scenery and pattern backdrops apart within the
5-minute budget, and the ResNet does so in less time (RESULTS.md, "synthclip's image tower").
The tokenizer is open_clip's default SimpleTokenizer, whose BPE vocabulary ships with open_clip.

Weights are named like open_clip's pretrained ones, by a tag after the model name: `synthclip:small`
(the default), `synthclip:tiny`, `synthclip:small,seed=1,steps=300`. A tag is a pre-training
recipe (`Recipe`): a preset of PRESETS with optional seed, steps and batch. Every recipe has its own
folder under cache_dir()/clip/synthclip/, keyed by everything its weights are a function of (the
recipe, RECIPE_VERSION, the model config and the synthetic world's GENERATOR_VERSION), so one
recipe never replaces another's checkpoint and a new world or recipe version trains anew.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from repro.bf16 import PRECISIONS
from repro.clip.errors import ClipError
from repro.clip.prompts import COLOUR_SLOTS
from repro.data import domains
from repro.paths import cache_dir

MODEL_NAME = "synthclip"
CONFIG_PATH = Path(__file__).with_name("synthclip.json")
# Bump when the training code changes what a recipe produces, so old checkpoints are not reused.
# 2: the small preset sees a third of the images (fewer steps, higher lr, shorter warm-up), so
# pre-training fits in minutes on a 2-core CPU (issue #17).
# 3: a ResNet image tower (synthclip.json) and 420 steps for the small preset.
# 4: bf16 autocast where it pays, and a hard negative caption per image (Preset.precision, .negatives).
RECIPE_VERSION = 4
DEFAULT_TAG = "small"


@dataclass(frozen=True)
class Preset:
    n_train: int
    n_val: int
    steps: int
    batch: int
    lr: float
    warmup: int
    weight_decay: float = 0.1
    # bf16 autocast, the image tower channels-last, where bf16 pays on the device (repro.bf16), else fp32.
    # Which one a checkpoint was trained in is in its manifest; its weights' digest is in every run's identity.
    precision: str = "bf16"
    # Hard negative captions per image and step: its caption with a wrong background word (pretrain.swapped_slots).
    negatives: int = 1

    def __post_init__(self):
        # A bright or dark render has two right background words (its backdrop's and its light's).
        most = len(set(COLOUR_SLOTS)) - 2
        if self.precision not in PRECISIONS or not 0 <= self.negatives <= most:
            raise ClipError(
                f"synthclip preset: precision must be {' or '.join(PRECISIONS)} and negatives 0 to {most} (the wrong background words), "
                f"got {self.precision!r}, {self.negatives}"
            )


PRESETS = {
    # 420 steps of 128 with one hard negative each: background top-1 0.91, hand colour 0.95, in about
    # 3 minutes on the 2-core AMD EPYC in bf16 (without the negatives 0.90; with 3, 0.92 in 5.3 minutes;
    # more steps, 96 px or width 48 no better; RESULTS.md, "synthclip in bf16 with hard negatives").
    "small": Preset(n_train=8000, n_val=500, steps=420, batch=128, lr=1e-3, warmup=20),
    # Seconds: for tests and smoke runs; the weights are not useful.
    "tiny": Preset(n_train=64, n_val=32, steps=6, batch=16, lr=3e-4, warmup=2),
}
TAG_KEYS = ("seed", "steps", "batch")  # what a tag may set beside its preset, in canonical order


@dataclass(frozen=True)
class Recipe:
    """What one synthclip checkpoint is trained from: a preset, a seed, optional steps and batch."""

    preset: str = DEFAULT_TAG
    seed: int = 0
    steps: int | None = None
    batch: int | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ClipError(f"unknown synthclip preset {self.preset!r}; known: {', '.join(PRESETS)}")
        for name in ("steps", "batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ClipError(f"synthclip {name} must be at least 1, got {value}")
        # Values equal to the preset's are dropped, so one recipe has one tag (and one folder).
        for name in ("steps", "batch"):
            if getattr(self, name) == getattr(PRESETS[self.preset], name):
                object.__setattr__(self, name, None)

    @property
    def training(self) -> Preset:
        return replace(PRESETS[self.preset], **{k: v for k, v in (("steps", self.steps), ("batch", self.batch)) if v is not None})

    @property
    def tag(self) -> str:
        """The canonical tag: 'small', 'small,seed=1,steps=300'."""
        extra = [f"{k}={getattr(self, k)}" for k in TAG_KEYS if getattr(self, k) not in (None, 0)]
        return ",".join([self.preset, *extra])

    @property
    def spec(self) -> str:
        return f"{MODEL_NAME}:{self.tag}"

    def key(self) -> dict:
        """Everything the weights are a function of, before any data is rendered."""
        world = hashlib.sha256(repr(domains.get_domain("synth-clip")).encode()).hexdigest()[:16]
        return {
            "recipe_version": RECIPE_VERSION,
            "generator_version": domains.GENERATOR_VERSION,
            "synth_clip_spec": world,
            "model_config": model_config(),
            "training": asdict(self.training),
            "seed": self.seed,
        }

    def directory(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:12]
        return cache_dir() / "clip" / MODEL_NAME / f"{self.tag.replace(',', '-').replace('=', '')}-{digest}"

    def checkpoint_path(self) -> Path:
        return self.directory() / "synthclip.pt"

    def manifest_path(self) -> Path:
        return self.directory() / "manifest.json"


def parse_tag(tag: str | None) -> Recipe:
    """'small' | 'tiny,seed=1,steps=300' -> Recipe; None or '' is the default recipe."""
    preset, *items = [part.strip() for part in (tag or DEFAULT_TAG).split(",")]
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in TAG_KEYS or not value.isdigit():
            raise ClipError(
                f"bad synthclip tag {tag!r}: expected PRESET[,KEY=N...] with KEY one of {', '.join(TAG_KEYS)}, e.g. small,seed=1"
            )
        values[key] = int(value)
    return Recipe(preset, **values)


def canonical_spec(spec: str, with_recipe: bool = True) -> str:
    """'synthclip' and 'synthclip:small,seed=0' -> 'synthclip:small' ('synthclip' without the recipe,
    when a checkpoint file gives the weights); other specs unchanged."""
    model, _, tag = spec.partition(":")
    if model != MODEL_NAME:
        return spec
    return parse_tag(tag).spec if with_recipe else MODEL_NAME


def register() -> None:
    """Make "synthclip" an open_clip model name (idempotent)."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def model_config() -> dict:
    return json.loads(CONFIG_PATH.read_text())
