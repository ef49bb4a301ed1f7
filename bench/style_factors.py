"""Which style factor breaks a trained model (run by hand).

    .venv/bin/python bench/style_factors.py RUN_ID [--n 384] [--target synth-stb] [--per-backdrop]

Evaluates a finished training run on source renders (the source's views, camera and style) in which
one style field at a time is swapped for the target's: its hand colours, its lighting, its scenes and
backdrops (on the source's version 0 alone, so no replaced background or recolouring mixes in), then
all of them at once. Each variant is the source's validation split re-drawn with that spec (same seeds), so the
EPE differences are the factor's alone. Prints EPE mm (hand3d protocol, visible joints) per variant.
"""

import argparse
import dataclasses
import types

import torch

from repro.data.domains import DOMAINS
from repro.data.synthetic import render_range
from repro.train.evaluate import evaluate_split
from repro.train.finished import load_run_model


def variants(source, target) -> dict:
    keep = {"name": source.name}  # the source's seeds: the same poses and views in every variant
    return {
        "source": source,
        f"{target.name} skin": dataclasses.replace(source, hand_colours=target.hand_colours, **keep),
        **{f"{light} light": dataclasses.replace(source, lighting=(light,), **keep) for light in target.lighting},
        # Version 0 only, so that no sample is recoloured or shows the source's replaced backgrounds.
        f"{target.name} backdrops": dataclasses.replace(source, backdrops=target.backdrops, scenes=target.scenes, versions=1, **keep),
        f"{target.name} style": dataclasses.replace(
            source, **{f: getattr(target, f) for f in ("hand_colours", "backdrops", "lighting", "scenes", "versions")}, **keep
        ),
    }


def per_backdrop(source, target) -> dict:
    """The target's backdrops one at a time, in its scenes, on the source's version 0 (its skin and light)."""
    keep = {"name": source.name, "versions": 1, "scenes": target.scenes}
    return {f"{word} {'/'.join(target.scenes)}": dataclasses.replace(source, backdrops=(word,), **keep) for word in target.backdrops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id")
    parser.add_argument("--n", type=int, default=384)
    parser.add_argument("--target", default="synth-stb")
    parser.add_argument("--per-backdrop", action="store_true", help="one line per backdrop of the target instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg, model = load_run_model(args.run_id)
    device = next(model.parameters()).device
    pick = per_backdrop if args.per_backdrop else variants
    for name, spec in pick(DOMAINS[cfg.source], DOMAINS[args.target]).items():
        out = render_range(spec, "val", 0, args.n, cfg.image_size)
        split = types.SimpleNamespace(images=out["image"], xyz=out["xyz"], visible=out["visible"])
        print(
            f"{name:24s} EPE {evaluate_split(model, split, cfg.model.input_size, device, cfg.precision, cfg.memory_format)['epe_mm']:.1f} mm",
            flush=True,
        )


if __name__ == "__main__":
    main()
