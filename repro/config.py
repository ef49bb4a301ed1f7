"""One frozen dataclass describes a run's settings; its canonical JSON hash is the config hash (MLflow
tag `config_hash`). A run's identity adds its data and CLIP weights (repro.train.identity). Presets
are data: named sets of field values over the defaults.

Defaults follow the paper where it speaks (SPEC sections 2-3): Adam lr 1e-4, betas (0.9, 0.999),
lambda1 = lambda2 = 1, lambda3 = 0.1, IE+TE with r = 0.6, concat fusion, eq. 4 as written.
Batch size and epochs are not given by the paper: presets decide.
"""

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field

from repro.bf16 import PRECISIONS  # bf16: autocast where it pays on the device, else fp32
from repro.clip.synthclip import canonical_spec
from repro.errors import ConfigError  # lives there for repro.model.config; import it from here
from repro.model.config import ModelConfig

# Part of every run's identity: bump when the trainer's meaning of an unchanged config changes, so
# old runs are not reused for new ones (v2: heatmap_sigma in heatmap pixels at every grid size;
# v3: Branch1's stage 3 with the supplement's six conv128 layers, hand3d's visible-joint metrics;
# v4: bf16 autocast where the device has bf16 units and channels-last by default, Table 6's augmentations
# batched, with other random draws; v5: the fused Adam kernel by default, whose rounding differs; v6: paired
# rows, a seed's models start alike with or without Branch2 and see one batch order; f_PP in fp32 under bf16;
# v7: model.viewpoint, f_PP's rotation angle bounded below pi by default).
TRAINER_VERSION = 7


LR_SCHEDULES = ("constant", "cosine")  # the paper's fixed Adam lr; cosine decay to 0 over the run
MODES = ("baseline", "ie", "te", "iete")  # Table 4: no Branch2/L_Con; image only; text only; both
# Table 6's two readings of normal augmentation, and the same pose re-rendered in another style
# (repro.train.objectives), each as the supervised input or as the contrastive positive.
AUGMENTATIONS = ("none", "normal-supervised", "normal-contrastive", "restyle-supervised", "restyle-contrastive")
CONTRASTIVE_AUGMENTATIONS = ("normal-contrastive", "restyle-contrastive")
MEMORY_FORMATS = ("channels_last", "contiguous")  # of the model's weights and inputs
# "fused": one kernel updates every parameter; "torch": PyTorch's choice (a loop over the tensors on the CPU)
ADAM_IMPLS = ("fused", "torch")


@dataclass(frozen=True)
class RunConfig:
    # data
    source: str = "synth-frei"
    targets: tuple[str, ...] = ("synth-stb", "synth-rhd")
    data_root: str | None = None  # real datasets: a folder holding freihand/, rhd/, stb/
    image_size: int = 128  # size of the stored crops; the model input is model.input_size
    n_train: int | None = None  # None: the whole split
    n_val: int | None = None
    n_test: int | None = None
    # CLIP
    clip: str = "synthclip:small"  # synthclip:RECIPE (repro.clip.synthclip), MODEL:TAG (open_clip) or MODEL + clip_checkpoint
    clip_checkpoint: str | None = None
    mode: str = "iete"
    ratio: float = 0.6  # r in f_CLIP = r f_CI + (1 - r) f_CT; forced to 1 (IE) or 0 (TE) by the mode
    # model and losses
    model: ModelConfig = field(default_factory=ModelConfig)
    lambda_heat: float = 1.0
    lambda_pose: float = 1.0
    lambda_con: float = 0.1
    contrastive: str = "paper"  # "paper" (eq. 4 as written) or "triplet" (bounded)
    augment: str = "none"
    # Gaussian heatmap targets, sigma in heatmap pixels at every size: scaled down with a small grid
    # (8x8 at 64 px) it would fall below a pixel and the targets would vanish between pixel centres.
    heatmap_sigma: float = 1.0
    # optimisation
    lr: float = 1e-4
    lr_schedule: str = "constant"
    lr_warmup: float = 0.0  # share of the run's optimiser steps over which the lr ramps up linearly; 0: none
    grad_clip: float = 0.0  # largest global gradient norm an optimiser step takes (larger ones are scaled down); 0: none
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int = 32
    epochs: int = 10
    seed: int = 0
    # numerics: the precision a run gets is in its identity (repro.train.identity), as it depends on the machine
    precision: str = "bf16"
    memory_format: str = "channels_last"
    adam_impl: str = "fused"
    # k > 0: k-fold cross-validation on the source training split only (`repro tune`); no target is read
    cv_folds: int = 0
    cv_fold: int = 0
    preset: str = "custom"

    def __post_init__(self):
        checks = {
            "mode": (self.mode in MODES, f"one of {MODES}"),
            "augment": (self.augment in AUGMENTATIONS, f"one of {AUGMENTATIONS}"),
            "contrastive": (self.contrastive in ("paper", "triplet"), "'paper' or 'triplet'"),
            "lr_schedule": (self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            "lr_warmup": (0.0 <= self.lr_warmup < 1.0, "a share of the run's steps in [0, 1)"),
            "grad_clip": (self.grad_clip >= 0.0, "a gradient norm >= 0 (0: no clipping)"),
            "ratio": (0.0 <= self.ratio <= 1.0, "a number in [0, 1]"),
            "batch_size": (self.batch_size >= 2, "at least 2 (the contrastive loss needs a negative)"),
            "epochs": (self.epochs >= 1, "at least 1"),
            "precision": (self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            "memory_format": (self.memory_format in MEMORY_FORMATS, f"one of {MEMORY_FORMATS}"),
            "adam_impl": (self.adam_impl in ADAM_IMPLS, f"one of {ADAM_IMPLS}"),
            "cv_fold": (self.cv_folds == 0 or 0 <= self.cv_fold < self.cv_folds, "0 <= cv_fold < cv_folds"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"config field {name!r} = {getattr(self, name)!r}: expected {expected}")
        if self.uses_clip and self.augment != "none":
            raise ConfigError(
                f"config field 'augment' = {self.augment!r}: expected 'none' with mode {self.mode!r} "
                "(the augmentations are methods of their own: set mode=baseline)"
            )
        self._canonicalise()

    def _canonicalise(self) -> None:
        """Fields a run does not use get one fixed value, so that equal trainings hash equal
        (e.g. the Baseline of Table 4a and of Table 4b are one run)."""
        fixed: dict[str, object] = {}
        if self.mode in ("ie", "te"):
            fixed["ratio"] = self.effective_ratio
        contrastive = self.uses_clip or self.augment in CONTRASTIVE_AUGMENTATIONS
        if self.uses_clip:
            # "synthclip" and "synthclip:small" are one CLIP; a checkpoint file replaces the preset's recipe.
            fixed["clip"] = canonical_spec(self.clip, with_recipe=self.clip_checkpoint is None)
        if not self.uses_clip:
            fixed.update(ratio=0.0, clip="none", clip_checkpoint=None, model=dataclasses.replace(self.model, fusion="concat"))
        if not contrastive:
            fixed.update(lambda_con=0.0, contrastive="paper")
        fixed["model"] = dataclasses.replace(fixed.get("model", self.model), branch2=contrastive)
        if self.cv_folds:
            fixed["targets"] = ()
        else:
            fixed["cv_fold"] = 0
        for name, value in fixed.items():
            object.__setattr__(self, name, value)

    @property
    def effective_ratio(self) -> float:
        return {"ie": 1.0, "te": 0.0}.get(self.mode, self.ratio)

    @property
    def uses_clip(self) -> bool:
        return self.mode != "baseline"

    @property
    def objective(self) -> str:
        """The name of the run's method in repro.train.objectives.OBJECTIVES."""
        return "clip" if self.uses_clip else "baseline" if self.augment == "none" else self.augment

    @property
    def restyled(self) -> bool:
        """Whether the run reads the source's restyled twin (the same poses in other styles)."""
        return self.augment.startswith("restyle")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        return json.dumps({"trainer_version": TRAINER_VERSION, **self.to_dict()}, sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def flat(self) -> dict[str, object]:
        """Dotted field -> value, for MLflow params."""
        out = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out


_EXPECTED = {int: "an integer", float: "a number", str: "a string"}


def _coerce(value: str, annotation):
    """Parse a --set string into the field's type (ValueError saying what was expected)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null", ""):
            return None
        try:
            return _coerce(value, next(a for a in args if a is not type(None)))
        except ValueError as err:
            raise ValueError(f"{err} or none") from None
    if origin is tuple:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if annotation is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError("expected true or false")
        return value.lower() in ("true", "1")
    try:
        return annotation(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected {_EXPECTED.get(annotation, getattr(annotation, '__name__', annotation))}") from None


def parse_overrides(items: list[str], flag: str = "--set") -> dict[str, str]:
    """['mode=baseline', 'model.width=0.5'] -> {'mode': 'baseline', 'model.width': '0.5'}, for with_overrides;
    an item without '=' raises ConfigError naming `flag`."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def with_overrides(config, overrides: dict[str, object], _prefix: str = ""):
    """A copy of a (nested) config with dotted-key overrides; values may be strings from --set.
    Bad keys and values raise ConfigError naming the dotted field and what was expected."""
    nested: dict[str, dict] = {}
    direct = {}
    hints = typing.get_type_hints(type(config))
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        name, full = f"{_prefix}{head}", f"{_prefix}{key}"
        if head not in hints:
            where = f" in {full!r}" if full != name else ""
            raise ConfigError(f"unknown config field {name!r}{where}; fields: {', '.join(_prefix + h for h in hints)}")
        group = dataclasses.is_dataclass(hints[head])
        if rest and not group:
            raise ConfigError(f"config field {name!r} has no sub-fields: set {name}=VALUE, not {full}=VALUE")
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif group and not dataclasses.is_dataclass(value):
            fields = ", ".join(f"{name}.{f}" for f in typing.get_type_hints(hints[head]))
            raise ConfigError(f"config field {name!r} = {value!r}: expected {name}.FIELD=VALUE, one of {fields}")
        else:
            try:
                direct[head] = _coerce(value, hints[head]) if isinstance(value, str) else value
            except ValueError as err:
                raise ConfigError(f"config field {full!r} = {value!r}: {err}") from None
            if isinstance(direct[head], list):
                direct[head] = tuple(direct[head])
    for head, sub in nested.items():
        direct[head] = with_overrides(getattr(config, head), sub, f"{_prefix}{head}.")
    try:
        return dataclasses.replace(config, **direct)
    except TypeError as err:  # a value of the wrong type (not from --set) that __post_init__ cannot compare
        given = ", ".join(f"{_prefix}{k}={v!r}" for k, v in direct.items())
        raise ConfigError(f"config overrides {given}: {err}") from None


def from_dict(data: dict) -> RunConfig:
    """Inverse of RunConfig.to_dict (re-creates a run from its logged parameters)."""
    data = dict(data)
    data.pop("trainer_version", None)  # written by canonical_json; identifies code, not a field
    model = ModelConfig.from_record(data.pop("model", {}))
    return with_overrides(RunConfig(model=model), data)
