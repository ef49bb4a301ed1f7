"""The decisions this suite takes where the paper is silent, in one registry (SPEC: "make it a named
option ... and say so in the generated report").

Each entry names the config field or the named constant that holds the decision, where the code
uses it, and why; its source (`Field` or `Constant`) reads the value a run used from the config or
from the constant itself, so a report lists what its runs computed with, not a copy that could drift. Reports render
this table (`rows`); the README points here.
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Field:
    """A config field (dotted for nested ones): the run's own value."""

    path: str

    @property
    def holder(self) -> str:
        return f"config field {self.path}"

    def value(self, cfg) -> str:
        value = cfg
        for part in self.path.split("."):
            value = getattr(value, part)
        return str(value)


@dataclass(frozen=True)
class Constant:
    """A named constant of the code, read where it lives; `render` turns it into text."""

    module: str
    name: str
    render: Callable[[object], str] = str

    @property
    def holder(self) -> str:
        return f"constant {self.module}.{self.name}"

    def value(self, cfg) -> str:
        from importlib import import_module

        return self.render(getattr(import_module(self.module), self.name))


@dataclass(frozen=True)
class Decision:
    name: str
    source: Field | Constant
    where: str  # the code that uses it
    why: str


def _augmentations(table) -> str:
    """Table 6's (name, probability, transform) rows as text: torchvision's reprs carry the strengths."""
    return "; ".join(f"{name} p={p:g}: {getattr(t, '__name__', None) or repr(t)}" for name, p, t in table)


DECISIONS: tuple[Decision, ...] = (
    Decision("CLIP features L2-normalised before mixing", Constant("repro.clip.encoders", "L2_NORMALISED"),
             "OpenClipEncoder.encode_images/encode_texts; f_CLIP = r f_CI + (1-r) f_CT in repro.clip.features.mix_features",
             "CLIP practice: both towers are trained on cosine similarity, so only directions carry meaning; "
             "unnormalised image and text features differ in scale and r would not weigh them as the paper says"),
    Decision("heat loss over the CPM stages", Constant("repro.losses", "HEAT_STAGES"),
             "repro.losses.heatmap_loss", "CPM's intermediate supervision (Wei et al. 2016): every stage gets the same target"),
    Decision("heatmap sigma (heatmap pixels)", Field("heatmap_sigma"), "repro.losses.gaussian_heatmaps",
             "the paper gives none; 1 pixel at every grid size keeps targets above zero between pixel centres on small grids"),
    Decision("the contrastive negative", Constant("repro.losses", "NEGATIVE_RULE"), "repro.losses.hardest_negative",
             "the paper's 'hardest negative' read as the batch sample whose ground-truth heatmap is farthest from the anchor's prediction"),
    Decision("eq. 4 form", Field("contrastive"), "repro.losses.contrastive_loss",
             "'paper' is eq. 4 as written (unbounded below); 'triplet' is the bounded variant"),
    Decision("evaluation root", Constant("repro.data.joints", "ROOT"), "repro.geometry3d.normalize_pose, repro.metrics.predictions_to_mm",
             "Zimmermann & Brox's palm keypoint (hand3d use_wrist_coord=False); STB has no wrist"),
    Decision("scored joints", Constant("repro.metrics", "PROTOCOL"), "repro.train.evaluate.pose_metrics",
             "hand3d's EvalUtil scores visible joints only; the all-joints variant is logged as *_all (the paper does not say which it scored)"),
    Decision("Table 6 normal augmentation: transforms", Constant("repro.train.augment", "TRANSFORMS", _augmentations), "repro.train.augment.normal_augment",
             "the paper names the six transforms but not their probabilities or strengths"),
    Decision("Table 6 normal augmentation: reading", Field("augment"), "repro.train.objectives",
             "the paper does not say whether the augmentation feeds supervised training or replaces the CLIP positive: both run"),
    Decision("RHD: which hand", Constant("repro.data.real.rhd", "HAND_CHOICE"), "repro.data.real.rhd",
             "RHD annotates both hands; one hand per image is scored"),
    Decision("STB: wrist", Constant("repro.data.real.stb", "WRIST_RULE"), "repro.data.real.stb.palm_to_wrist",
             "STB labels the palm, not the wrist; this keeps STB's palm as the evaluation root"),
    Decision("batch size", Field("batch_size"), "repro.train.loop", "the paper gives none: the preset decides"),
    Decision("epochs", Field("epochs"), "repro.train.run", "the paper gives none: the preset decides"),
    Decision("viewpoint: rotation angle", Field("model.viewpoint"), "repro.model.pose_prior",
             "the supplement gives three FC(1) heads -> axis-angle -> Rodrigues; 'bounded' squashes the angle below pi, "
             "as the unbounded heads ran away and diverged a third of Table 6's supervised-augmentation trainings"),
    Decision("weight init", Field("model.init"), "repro.model.hand_pose", "the paper does not say; 'torch' is PyTorch's default"),
    Decision("lr schedule", Field("lr_schedule"), "repro.train.loop", "the paper gives a fixed Adam lr ('constant')"),
    Decision("lr warm-up (share of steps)", Field("lr_warmup"), "repro.train.loop.scheduled_lr", "the paper gives none (0)"),
    Decision("gradient clipping (global norm)", Field("grad_clip"), "repro.train.loop.train_epoch", "the paper gives none (0)"),
    Decision("Adam implementation", Field("adam_impl"), "repro.train.loop.new_state",
             "the paper does not say; 'fused' is one kernel for every parameter, 'torch' PyTorch's own choice"),
)  # fmt: skip


def rows(configs) -> list[dict]:
    """One row per decision: name, holder, where, why, and the value(s) the given configs used."""
    out = []
    for d in DECISIONS:
        values = list(dict.fromkeys(d.source.value(cfg) for cfg in configs))
        out.append({"decision": d.name, "value": " | ".join(values) or "-", "holder": d.source.holder, "where": d.where, "why": d.why})
    return out
