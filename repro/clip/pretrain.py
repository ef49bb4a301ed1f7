"""Pre-training synthclip on captioned renders, standing in for web-scale pre-training.

SPEC section 6: open_clip's CLIP class and CLIP's contrastive loss, on the synthetic domain "synth-clip"
(renders of every style, seeds disjoint from all evaluation splits, never any pose label). Each
step re-captions every image: head and hand word drawn afresh, and for a bright or dark render
the colour slot is either its backdrop word or its lighting word, so the model ties both kinds of
words to the image (the paper's prompts use both). Each image is also contrasted with its caption
under a wrong background word (a hard negative): in a batch of 128 captions, one that differs from
an image's own only in that word is rare, and the background word was what a small CLIP got wrong
(RESULTS.md). The run is logged to MLflow; the checkpoint and a manifest land in the recipe's folder
(synthclip.Recipe.directory), and a later call with the same recipe reuses them. `ensure` is what
every command that needs a synthclip calls: it builds the recipe's checkpoint when it is missing or
stale, once across processes.
"""

import json
import math
import random
import sys
import time
from dataclasses import asdict
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from repro.bf16 import effective
from repro.clip import prompts, synthclip
from repro.clip.preprocess import input_size, normalise, resize
from repro.clip.synthclip import Preset, Recipe
from repro.clip.zeroshot import background_right
from repro.files import building, file_sha256, save_tensor, write_json

LOG_EVERY = 25


def fresh_caption(style: dict, rng: random.Random) -> prompts.PromptParts:
    """A caption true of a render with `style`, drawn afresh (see the module docstring)."""
    slot = style["backdrop"] if style["lighting"] == "normal" else rng.choice([style["backdrop"], style["lighting"]])
    return prompts.PromptParts(rng.choice(prompts.HEADS), style["hand_colour"], rng.choice(prompts.HANDS), slot, style["scene"])


def swapped_slots(parts: prompts.PromptParts, style: dict, rng: random.Random, n: int) -> list[prompts.PromptParts]:
    """`n` hard negatives of the caption `parts` (NegCLIP's, Yuksekgonul et al. 2023): its words with distinct
    background words that are wrong for `style`, so that every step contrasts each image with captions that
    differ from its own only there."""
    wrong = [w for w in dict.fromkeys(prompts.COLOUR_SLOTS) if not background_right(w, style)]
    return [parts._replace(slot=w) for w in rng.sample(wrong, n)]


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric loss over a batch of matching (image, text) feature rows (open_clip's ClipLoss on one
    device), with `negatives` (m, d), extra captions that match no image, added to each image's choices."""
    labels = torch.arange(len(image), device=image.device)
    captions = text if negatives is None else torch.cat([text, negatives])
    per_image = F.cross_entropy(scale * image @ captions.T, labels)
    per_text = F.cross_entropy(scale * text @ image.T, labels)
    return (per_image + per_text) / 2


def _load_train_set(dataset: Sequence, size: int) -> tuple[torch.Tensor, list[dict]]:
    """All images resized to the model's input (uint8, so 8,000 renders take 100 MB) and their styles."""
    images, styles = [], []
    for i in tqdm(range(len(dataset)), desc="loading synth-clip", unit="img"):
        sample = dataset[i]
        images.append(resize(sample.image[None], size)[0])
        styles.append(sample.meta["style"])
    return torch.stack(images), styles


def _schedule(warmup: int, steps: int):
    """Linear warm-up then cosine decay to zero, as open_clip's training recipe."""
    return lambda step: (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _optimizer(model: torch.nn.Module, preset: Preset) -> torch.optim.Optimizer:
    # No weight decay on gains, biases and the logit scale (open_clip_train's rule: 1-d parameters).
    decay = [p for p in model.parameters() if p.ndim >= 2]
    plain = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": preset.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    # fused: one kernel for all parameters; the 9.5M-entry token embedding otherwise makes the
    # optimiser step cost as much as a small batch's forward and backward pass on a CPU.
    return torch.optim.AdamW(groups, lr=preset.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)


def train(
    dataset: Sequence,
    preset: Preset,
    seed: int = 0,
    device: str = "cpu",
    on_loss=None,
    model_name: str = synthclip.MODEL_NAME,
) -> torch.nn.Module:
    """A synthclip model trained on `dataset` (HandSample with meta["style"]); on_loss(step, loss) per
    step. `model_name`: another registered open_clip config trained the same way (bench/)."""
    import open_clip

    synthclip.register()
    # Adam's second moments of tiny gradients (unused token embeddings) are denormal floats, which
    # CPUs handle dozens of times slower: flushing them to zero made a CPU step three times faster.
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, output_dict=True).to(device).train()
    bf16 = effective(preset.precision, torch.device(device)) == "bf16"
    layout = torch.channels_last if bf16 else torch.contiguous_format
    model.visual.to(memory_format=layout)
    tokenizer = open_clip.get_tokenizer(model_name)
    cfg = model.visual.preprocess_cfg
    mean, std = torch.tensor(cfg["mean"]), torch.tensor(cfg["std"])
    images, styles = _load_train_set(dataset, input_size(cfg))
    optimizer = _optimizer(model, preset)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(preset.warmup, preset.steps))
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    batch = min(preset.batch, len(images))

    with tqdm(range(preset.steps), desc="pretrain synthclip", unit="step") as bar:
        for step in bar:
            # Without replacement: a repeated image would be its own negative in the contrastive loss.
            index = torch.randperm(len(images), generator=generator)[:batch]
            captions = [fresh_caption(styles[i], rng) for i in index.tolist()]
            negatives = [n for i, c in zip(index.tolist(), captions) for n in swapped_slots(c, styles[i], rng, preset.negatives)]
            texts = tokenizer([prompts.caption(*c) for c in captions + negatives])
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                out = model(normalise(images[index], mean, std).to(device, memory_format=layout), texts.to(device))
            # In fp32: logits of up to 100 in bf16 would be off by up to 0.5.
            image, text = out["image_features"].float(), out["text_features"].float()
            loss = contrastive_loss(image, text[:batch], out["logit_scale"].float(), text[batch:] if negatives else None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():  # CLIP's cap on the temperature, so logits stay below 100
                model.logit_scale.clamp_(0, math.log(100))
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if on_loss is not None:
                on_loss(step, loss.item())
    return model.eval()


def recipe(train_set: Sequence, val_set: Sequence, wanted: Recipe) -> dict:
    """Everything the checkpoint is a function of, data digests included; a stored manifest with the
    same record is reused."""
    return {**wanted.key(), "model": synthclip.MODEL_NAME, "tag": wanted.tag, "train_data": train_set.digest, "val_data": val_set.digest}


def reusable_manifest(wanted: Recipe, record: dict | None = None) -> dict | None:
    """The recipe's stored manifest if its checkpoint is intact (and it was made from `record`, when given)."""
    path, checkpoint = wanted.manifest_path(), wanted.checkpoint_path()
    if not (path.is_file() and checkpoint.is_file()):
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("recipe", {}).get("tag") != wanted.tag or manifest.get("weights_sha256") != file_sha256(checkpoint):
        return None
    if record is not None and manifest["recipe"] != record:
        return None
    return manifest


def ensure(wanted: Recipe, device: str = "cpu") -> tuple[dict, bool]:
    """(manifest, reused): the recipe's checkpoint, pre-trained on synth-clip renders unless it exists."""
    from repro.data.registry import open_dataset

    with building(wanted.checkpoint_path()):  # workers side by side pre-train it once
        manifest = reusable_manifest(wanted)
        if manifest is not None:
            return manifest, True
        print(f"{wanted.spec}: no stored weights for this recipe; pre-training them ({wanted.directory()})", file=sys.stderr)
        training = wanted.training
        train_set = open_dataset("synth-clip", split="train", n=training.n_train)
        val_set = open_dataset("synth-clip", split="val", n=training.n_val)
        return _pretrain(train_set, val_set, wanted, device)


def pretrain(train_set: Sequence, val_set: Sequence, wanted: Recipe, device: str = "cpu") -> tuple[dict, bool]:
    """(manifest, reused): train, evaluate, log and store synthclip on the given datasets, unless the
    recipe's stored checkpoint was made from them."""
    with building(wanted.checkpoint_path()):
        return _pretrain(train_set, val_set, wanted, device)


def _pretrain(train_set: Sequence, val_set: Sequence, wanted: Recipe, device: str) -> tuple[dict, bool]:
    record = recipe(train_set, val_set, wanted)
    manifest = reusable_manifest(wanted, record)
    if manifest is not None:
        return manifest, True

    import mlflow
    from mlflow.entities import Metric

    from repro.clip.encoders import OpenClipEncoder
    from repro.clip.zeroshot import evaluate
    from repro.tracking import CLIP_EXPERIMENT, client, experiment, use_store

    preset = wanted.training
    precision = effective(preset.precision, torch.device(device))
    exp = experiment(CLIP_EXPERIMENT)
    use_store()
    run = mlflow.start_run(experiment_id=exp, run_name=f"synthclip-{wanted.tag}")
    store, pending = client(), []

    def log_loss(step: int, loss: float) -> None:
        pending.append(Metric("loss", loss, int(time.time() * 1000), step))
        if len(pending) >= LOG_EVERY or step == preset.steps - 1:
            store.log_batch(run.info.run_id, metrics=pending)  # one database write per LOG_EVERY steps
            pending.clear()

    with run:
        mlflow.set_tag("synthclip_tag", wanted.tag)
        mlflow.log_params(
            {
                "tag": wanted.tag,
                "train_data": record["train_data"],
                "val_data": record["val_data"],
                "seed": wanted.seed,
                "device": device,
                **asdict(preset),
                "precision_effective": precision,
            }
        )
        mlflow.log_dict(record["model_config"], "model_config.json")
        model = train(train_set, preset, wanted.seed, device, on_loss=log_loss)
        save_tensor(model.cpu().state_dict(), wanted.checkpoint_path())
        digest = file_sha256(wanted.checkpoint_path())
        # Evaluated as the encoder `--clip synthclip:TAG` will load, so its cached features are reused.
        metrics = evaluate(OpenClipEncoder(model, synthclip.MODEL_NAME, wanted.spec, digest, device), val_set)
        mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in metrics.items() if isinstance(v, float)})
        manifest = {
            "recipe": record,
            "precision_effective": precision,
            "weights_sha256": digest,
            "metrics": metrics,
            "mlflow_run_id": run.info.run_id,
        }
        mlflow.log_dict(manifest, "manifest.json")
    write_json(manifest, wanted.manifest_path())
    return manifest, False
