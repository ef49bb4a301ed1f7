"""Frozen CLIP encoders f_CI, f_CT (paper Sec. 3.2) behind one interface, built from a spec string.

Specs (the `--clip` option), looked up in SOURCES by the part before ":":
  "synthclip[:TAG]"              the suite's own small CLIP (default), weights of the pre-training
                                 recipe TAG ("small" by default, "tiny", "small,seed=1"...), pre-trained
                                 on first use (repro.clip.synthclip)
  "synthclip" + checkpoint=PATH  the same architecture with weights from PATH
  "MODEL:TAG"                    open_clip pretrained weights, e.g. "ViT-B-32:openai" (needs network
                                 or a cached copy; fails within seconds offline)
  "MODEL" + checkpoint=PATH      an open_clip architecture with a local state dict (what
                                 torch.save(model.state_dict()) of an open_clip model writes)
Features are L2-normalised float32 on the CPU. `identity` + `weights_digest` + `preprocessing`
name the function an encoder computes; the feature cache keys on them.
"""

import difflib
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

from repro.clip import hub, synthclip
from repro.clip.errors import ClipError
from repro.clip.preprocess import input_size, normalise, resize
from repro.files import file_sha256

DEFAULT_SPEC = synthclip.MODEL_NAME
# f_CI and f_CT are L2-normalised before f_CLIP mixes them (CLIP practice; repro.decisions).
L2_NORMALISED = True


class ClipEncoder(Protocol):
    identity: str
    weights_digest: str
    dim: int
    image_size: int
    preprocessing: str

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) RGB -> float32 (B, dim), unit length."""

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N strings -> float32 (N, dim), unit length."""


class OpenClipEncoder:
    """An open_clip model, frozen, with its own tokenizer and image preprocessing."""

    def __init__(self, model: torch.nn.Module, model_name: str, identity: str, weights_digest: str, device: str = "cpu"):
        import open_clip

        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.identity = identity
        self.weights_digest = weights_digest
        self.device = device
        self.dim = int(model.visual.output_dim)
        cfg = model.visual.preprocess_cfg
        self.image_size = input_size(cfg)
        self._resize = (cfg["resize_mode"], cfg["interpolation"])
        self._mean = torch.tensor(cfg["mean"], dtype=torch.float32)
        self._std = torch.tensor(cfg["std"], dtype=torch.float32)
        self.preprocessing = f"{cfg['resize_mode']}-{cfg['interpolation']}-{self.image_size}-mean{list(cfg['mean'])}-std{list(cfg['std'])}"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return normalise(resize(images, self.image_size, *self._resize), self._mean, self._std)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model.encode_image(self.preprocess(images).to(self.device))
        return _unit(features).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        features = self.model.encode_text(self.tokenizer(list(texts)).to(self.device))
        return _unit(features).cpu()


def _unit(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return F.normalize(features, dim=-1) if L2_NORMALISED else features


def _check_model_name(model: str) -> None:
    import open_clip

    synthclip.register()
    known = open_clip.list_models()
    if model not in known:
        close = difflib.get_close_matches(model, known, n=5)
        raise ClipError(
            f"unknown CLIP model {model!r}; did you mean {', '.join(close) or 'synthclip or ViT-B-32'}? (open_clip.list_models() lists all)"
        )


def _from_checkpoint(model_name: str, checkpoint: Path, identity: str, device: str) -> OpenClipEncoder:
    import open_clip

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ClipError(f"CLIP checkpoint {checkpoint} does not exist")
    try:  # given as `pretrained`, so open_clip does not log "initialized randomly" before we load
        model = open_clip.create_model(model_name, pretrained=str(checkpoint))
    except Exception as err:  # torch.load's unpickling errors, or load_state_dict's key/shape mismatch
        first = str(err).strip().splitlines()[0][:400]
        raise ClipError(f"CLIP checkpoint {checkpoint} is not an open_clip state dict for {model_name}: {first}") from err
    return OpenClipEncoder(model, model_name, identity, file_sha256(checkpoint), device)


def _synthclip_source(model: str, tag: str | None, checkpoint: Path | None, device: str) -> OpenClipEncoder:
    synthclip.register()
    if checkpoint is not None:
        if tag:
            raise ClipError(f"give either synthclip:{tag} or --clip-checkpoint, not both")
        return _from_checkpoint(synthclip.MODEL_NAME, checkpoint, "synthclip+checkpoint", device)
    from repro.clip.pretrain import ensure

    recipe = synthclip.parse_tag(tag)
    ensure(recipe, device)  # pre-trains the recipe's weights first when they are missing or stale
    return _from_checkpoint(synthclip.MODEL_NAME, recipe.checkpoint_path(), recipe.spec, device)


def _open_clip_source(model: str, tag: str | None, checkpoint: Path | None, device: str) -> OpenClipEncoder:
    import open_clip

    _check_model_name(model)
    if checkpoint is not None and tag:
        raise ClipError(f"give either {model}:{tag} or --clip-checkpoint, not both")
    if checkpoint is not None:
        return _from_checkpoint(model, checkpoint, f"{model}+checkpoint", device)
    if not tag:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise ClipError(f"{model} needs weights: --clip {model}:TAG (open_clip tags: {tags}) or --clip-checkpoint PATH")
    path, cfg = hub.fetch_pretrained(model, tag)
    # The tag's preprocessing (mean/std, resize) and activation (OpenAI's weights were trained with
    # QuickGELU) go with the weights, as when open_clip resolves the tag itself.
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    net = open_clip.create_model(model, pretrained=path, force_quick_gelu=bool(cfg.get("quick_gelu")), force_preprocess_cfg=preprocess)
    return OpenClipEncoder(net, model, f"{model}:{tag}", file_sha256(Path(path)), device)


Source = Callable[[str, str | None, Path | None, str], OpenClipEncoder]
# Spec sources by the name before ":"; any other name is an open_clip architecture.
SOURCES: dict[str, Source] = {synthclip.MODEL_NAME: _synthclip_source}


def build_encoder(spec: str = DEFAULT_SPEC, checkpoint: str | Path | None = None, device: str = "cpu") -> OpenClipEncoder:
    """The frozen encoder named by `spec` (see the module docstring)."""
    model, _, tag = spec.partition(":")
    source = SOURCES.get(model, _open_clip_source)
    return source(model, tag or None, Path(checkpoint) if checkpoint is not None else None, device)
