"""The decisions this suite takes where the paper is silent, in one registry (SPEC: "make it a named
option ... and say so in the generated report").

Each entry names the config field or the named constant that holds the decision, where the code
uses it, and why; `value(cfg)` reads the value a run used from the config or from the constant
itself, so a report lists what its runs computed with, not a copy that could drift. Reports render
this table (`rows`); the README points here.
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Decision:
    name: str
    holder: str  # "config field X" or "constant module.NAME"
    where: str  # the code that uses it
    why: str
    value: Callable[[object], str]  # RunConfig -> the value the run used, as text


def _field(path: str) -> Callable[[object], str]:
    def read(cfg) -> str:
        value = cfg
        for part in path.split("."):
            value = getattr(value, part)
        return str(value)

    return read


def _augmentations(cfg) -> str:
    from repro.train.augment import AUGMENTATIONS

    def strength(transform) -> str:
        return getattr(transform, "__name__", None) or repr(transform).replace("\n", " ")

    return "; ".join(f"{name} p={p:g}: {strength(t)}" for name, p, t in AUGMENTATIONS)


def _constant(module: str, name: str) -> Callable[[object], str]:
    def read(cfg) -> str:
        from importlib import import_module

        return str(getattr(import_module(module), name))

    return read


DECISIONS: tuple[Decision, ...] = (
    Decision("CLIP features L2-normalised before mixing", "constant repro.clip.encoders.L2_NORMALISED",
             "OpenClipEncoder.encode_images/encode_texts; f_CLIP = r f_CI + (1-r) f_CT in repro.clip.features.mix_features",
             "CLIP practice: both towers are trained on cosine similarity, so only directions carry meaning; "
             "unnormalised image and text features differ in scale and r would not weigh them as the paper says",
             _constant("repro.clip.encoders", "L2_NORMALISED")),
    Decision("heat loss over the CPM stages", "constant repro.losses.HEAT_STAGES",
             "repro.losses.heatmap_loss", "CPM's intermediate supervision (Wei et al. 2016): every stage gets the same target",
             _constant("repro.losses", "HEAT_STAGES")),
    Decision("heatmap sigma (heatmap pixels)", "config field heatmap_sigma", "repro.losses.gaussian_heatmaps",
             "the paper gives none; 1 pixel at every grid size keeps targets above zero between pixel centres on small grids",
             _field("heatmap_sigma")),
    Decision("the contrastive negative", "constant repro.losses.NEGATIVE_RULE", "repro.losses.hardest_negative",
             "the paper's 'hardest negative' read as the batch sample whose ground-truth heatmap is farthest from the anchor's prediction",
             _constant("repro.losses", "NEGATIVE_RULE")),
    Decision("eq. 4 form", "config field contrastive", "repro.losses.contrastive_loss",
             "'paper' is eq. 4 as written (unbounded below); 'triplet' is the bounded variant",
             _field("contrastive")),
    Decision("evaluation root", "constant repro.data.joints.ROOT", "repro.geometry3d.normalize_pose, repro.metrics.predictions_to_mm",
             "Zimmermann & Brox's palm keypoint (hand3d use_wrist_coord=False); STB has no wrist", _constant("repro.data.joints", "ROOT")),
    Decision("scored joints", "constant repro.metrics.PROTOCOL", "repro.train.evaluate.pose_metrics",
             "hand3d's EvalUtil scores visible joints only; the all-joints variant is logged as *_all (the paper does not say which it scored)",
             _constant("repro.metrics", "PROTOCOL")),
    Decision("Table 6 normal augmentation: transforms", "constant repro.train.augment.AUGMENTATIONS", "repro.train.augment.normal_augment",
             "the paper names the six transforms but not their probabilities or strengths", _augmentations),
    Decision("Table 6 normal augmentation: reading", "config field augment", "repro.train.loop",
             "the paper does not say whether the augmentation feeds supervised training or replaces the CLIP positive: both run",
             _field("augment")),
    Decision("RHD: which hand", "constant repro.data.real.rhd.HAND_CHOICE", "repro.data.real.rhd",
             "RHD annotates both hands; one hand per image is scored", _constant("repro.data.real.rhd", "HAND_CHOICE")),
    Decision("STB: wrist", "constant repro.data.real.stb.WRIST_RULE", "repro.data.real.stb.palm_to_wrist",
             "STB labels the palm, not the wrist; this keeps STB's palm as the evaluation root", _constant("repro.data.real.stb", "WRIST_RULE")),
    Decision("batch size", "config field batch_size", "repro.train.loop", "the paper gives none: the preset decides", _field("batch_size")),
    Decision("epochs", "config field epochs", "repro.train.run", "the paper gives none: the preset decides", _field("epochs")),
    Decision("weight init", "config field model.init", "repro.model.hand_pose", "the paper does not say; 'torch' is PyTorch's default",
             _field("model.init")),
    Decision("lr schedule", "config field lr_schedule", "repro.train.loop", "the paper gives a fixed Adam lr ('constant')", _field("lr_schedule")),
)  # fmt: skip


def rows(configs) -> list[dict]:
    """One row per decision: name, holder, where, why, and the value(s) the given configs used."""
    out = []
    for d in DECISIONS:
        values = list(dict.fromkeys(d.value(cfg) for cfg in configs))
        out.append({"decision": d.name, "value": " | ".join(values) or "-", "holder": d.holder, "where": d.where, "why": d.why})
    return out
