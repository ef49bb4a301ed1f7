"""`repro clip prompts|embed|pretrain|eval`: the paper's prompts, CLIP features, the suite's own CLIP."""

import json
from pathlib import Path

from repro.cli.output import print_record
from repro.clip.errors import ClipError

PROMPTS_HELP = (
    "print the paper's text prompts, one per line: 7 heads x 7 hand colours x 2 hand words x 20 colour "
    "words x 2 background words = 3,920 (supplement Table 3); the colour list names 'yellow' twice, "
    "so 3,724 are distinct (--unique)"
)


def _add_clip_options(parser) -> None:
    parser.add_argument(
        "--clip",
        default="synthclip",
        help="CLIP to use: synthclip[:RECIPE] (default synthclip:small, offline; pre-trained on first use), MODEL:TAG (open_clip pretrained, e.g. ViT-B-32:openai) or MODEL with --clip-checkpoint",
    )
    parser.add_argument("--clip-checkpoint", default=None, type=Path, help="local open_clip state dict for --clip MODEL")
    parser.add_argument("--device", default="cpu", help="torch device for the encoder")


def register(sub) -> None:
    clip = sub.add_parser("clip", help="prompts, CLIP features and the suite's own small CLIP")
    cmds = clip.add_subparsers(dest="clip_command", required=True)

    prompts = cmds.add_parser("prompts", help=PROMPTS_HELP, description=PROMPTS_HELP)
    prompts.add_argument("--unique", action="store_true", help="only the 3,724 distinct sentences, in first-seen order")
    prompts.set_defaults(func=_prompts)

    embed = cmds.add_parser("embed", help="print the L2-normalised CLIP feature of one text or one image")
    _add_clip_options(embed)
    what = embed.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="text to encode (f_CT)")
    what.add_argument("--image", type=Path, help="image file to encode (f_CI)")
    embed.add_argument("--json", action="store_true", help="print one JSON object")
    embed.set_defaults(func=_embed)

    pretrain = cmds.add_parser(
        "pretrain", help="train synthclip:TAG on captioned synthetic renders (each recipe its own checkpoint; reused when stored)"
    )
    pretrain.add_argument(
        "--preset", default="small", choices=("small", "tiny"), help="small: the default synthclip; tiny: seconds, for smoke tests"
    )
    pretrain.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the preset's)")
    pretrain.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--device", default="cpu", help="torch device to train on")
    pretrain.set_defaults(func=_pretrain)

    evaluate = cmds.add_parser("eval", help="zero-shot hand-colour and background accuracy and caption R@1/R@5 on held-out renders (JSON)")
    _add_clip_options(evaluate)
    evaluate.add_argument("--split", default="val", help="split of synth-clip to evaluate on")
    evaluate.add_argument("--n", type=int, default=500, help="number of renders")
    evaluate.set_defaults(func=_eval)


def _prompts(args) -> int:
    from repro.clip.prompts import all_prompts, unique_prompts

    print("\n".join(unique_prompts() if args.unique else all_prompts()))
    return 0


def _read_image(path: Path):
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError) as err:
        raise ClipError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _embed(args) -> int:
    from repro.clip.encoders import build_encoder

    encoder = build_encoder(args.clip, args.clip_checkpoint, args.device)
    feature = encoder.encode_texts([args.text])[0] if args.text is not None else encoder.encode_images(_read_image(args.image)[None])[0]
    record = {"clip": encoder.identity, "weights": encoder.weights_digest, "dim": encoder.dim, "feature": feature.tolist()}
    print_record(record, args.json)
    return 0


def _pretrain(args) -> int:
    from repro.clip.pretrain import ensure
    from repro.clip.synthclip import Recipe

    recipe = Recipe(args.preset, seed=args.seed, steps=args.steps, batch=args.batch)
    manifest, reused = ensure(recipe, device=args.device)
    state = "reused (its manifest matches this recipe)" if reused else "trained"
    print(f"{recipe.spec} {state}: {recipe.checkpoint_path()}")
    print(json.dumps(manifest["metrics"]))
    return 0


def _eval(args) -> int:
    from repro.clip.encoders import build_encoder
    from repro.clip.zeroshot import evaluate
    from repro.data.registry import open_dataset

    encoder = build_encoder(args.clip, args.clip_checkpoint, args.device)
    print(json.dumps(evaluate(encoder, open_dataset("synth-clip", split=args.split, n=args.n))))
    return 0
