"""synthclip recipes side by side, and where the background word goes wrong (run by hand).

    .venv/bin/python bench/synthclip_recipes.py [VARIANT ...] [--vision JSON] [--checkpoint PATH] [--confusions 10]

A VARIANT is fields of synthclip's `small` preset (repro.clip.synthclip.Preset) set over it, e.g.
`steps=500,batch=64`, `lr=0.002` or `negatives=0`, and optionally the seed (`negatives=0,seed=1`);
`small` is the preset itself. Each is pre-trained as `repro clip
pretrain` does (same renders, same seed), timed, and scored zero-shot on the preset's held-out renders
(repro.clip.zeroshot), but neither logged nor stored. `--vision` trains them with another image tower:
synthclip.json's vision_cfg replaced by the given one, e.g. the former ViT
'{"image_size": 64, "layers": 4, "width": 192, "head_width": 64, "patch_size": 8}' or a ResNet's
'{"image_size": 64, "layers": [1, 1, 1, 1], "width": 32, "head_width": 64}' (open_clip builds a
ModifiedResNet when "layers" is a list). `--checkpoint` scores a stored synthclip instead
(e.g. one under cache_dir()/clip/synthclip/). Prints one JSON line per model, then its commonest
background-word errors as (backdrop word, lighting, chosen word) with how often each happened.
Features are cached under a digest of the weights, so no two models share an entry.
"""

import argparse
import collections
import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

import torch

from repro.clip import synthclip
from repro.clip.encoders import OpenClipEncoder
from repro.clip.features import image_features, text_features
from repro.clip.pretrain import train
from repro.clip.prompts import all_parts
from repro.clip.zeroshot import background_right, evaluate
from repro.data.registry import open_dataset


def _preset(variant: str) -> tuple[synthclip.Preset, int]:
    """(preset, seed) of a VARIANT."""
    base = synthclip.PRESETS["small"]
    if variant == "small":
        return base, 0
    fields = dict(item.split("=", 1) for item in variant.split(","))
    seed = int(fields.pop("seed", 0))
    return dataclasses.replace(base, **{k: type(getattr(base, k))(v) for k, v in fields.items()}), seed


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _register_vision(vision: str) -> str:
    """An open_clip model name for synthclip.json with its vision_cfg replaced by `vision` (JSON)."""
    import open_clip

    config = {**synthclip.model_config(), "vision_cfg": json.loads(vision)}
    name = f"synthclip-bench-{hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]}"
    path = Path(tempfile.mkdtemp()) / f"{name}.json"  # open_clip names a config by its file's stem
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


def _confusions(encoder, val_set, n: int) -> list[tuple[int, tuple[str, str, str]]]:
    parts = all_parts()
    best = (image_features(encoder, val_set) @ text_features(encoder).T).argmax(dim=1).tolist()
    wrong = collections.Counter()
    for i, b in enumerate(best):
        style, slot = val_set[i].meta["style"], parts[b].slot
        if not background_right(slot, style):
            wrong[style["backdrop"], style["lighting"], slot] += 1
    return [(count, key) for key, count in wrong.most_common(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", default=[], help="preset fields over synthclip's small preset, or 'small'")
    parser.add_argument("--vision", help="train the variants with this image tower config (JSON) in place of synthclip.json's")
    parser.add_argument("--checkpoint", help="score this stored synthclip state dict instead of training")
    parser.add_argument("--confusions", type=int, default=10, help="background-word errors to list per model")
    args = parser.parse_args()
    if not args.variants and not args.checkpoint:
        parser.error("give at least one VARIANT or --checkpoint")
    import open_clip

    synthclip.register()
    try:
        trained_name = _register_vision(args.vision) if args.vision else synthclip.MODEL_NAME
    except json.JSONDecodeError as e:
        parser.error(f"--vision is not JSON: {e}")
    models = []
    if args.checkpoint:
        model = open_clip.create_model(synthclip.MODEL_NAME)
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
        models.append((args.checkpoint, synthclip.MODEL_NAME, synthclip.PRESETS["small"], model.eval(), None))
    for variant in args.variants:
        preset, seed = _preset(variant)
        start = time.perf_counter()
        model = train(open_dataset("synth-clip", split="train", n=preset.n_train), preset, seed, model_name=trained_name)
        models.append((variant, trained_name, preset, model, time.perf_counter() - start))
    for name, model_name, preset, model, seconds in models:
        val_set = open_dataset("synth-clip", split="val", n=preset.n_val)
        encoder = OpenClipEncoder(model, model_name, f"bench:{name}", _digest(model), "cpu")
        scores = evaluate(encoder, val_set)
        keys = ("hand_colour_top1", "background_top1", "i2t_R@1", "i2t_R@5")
        tower = args.vision if model_name != synthclip.MODEL_NAME else "synthclip.json"
        row = {"model": name, "vision": tower, "train_s": seconds and round(seconds, 1), **{k: round(scores[k], 3) for k in keys}}
        print(json.dumps(row))
        for count, (backdrop, lighting, chosen) in _confusions(encoder, val_set, args.confusions):
            print(f"  {count:3d}  {backdrop} under {lighting} light read as {chosen}")


if __name__ == "__main__":
    main()
