"""How near a preset's training comes to diverging in its first epoch, over seeds (run by hand).

    .venv/bin/python bench/stability.py [--preset small] [--seeds 12] [--first-seed 0] [--steps N] [--workers 2]
        [--row NAME KEY=VALUE ...] [--set KEY=VALUE ...] [--json]

Every divergence of the `small` preset's trainings seen so far came in their first epoch, between the
warm-up's middle and a few hundred steps after its end (RESULTS.md), so recipes can be compared there
at an eighth of a training's cost (--steps runs on past the first epoch, for a longer warm-up).
For each row (default: the Baseline, Table 6's normal augmentation (supervised) and Table 5's
lambda3=0.001 at r=0.6, the rows that diverged) and each seed (0..SEEDS-1 by default), it runs the training's first
--steps steps (default: the first epoch) exactly as `repro train` would (on its device), in worker
processes of one thread each (as a study trains), tracking nothing, and records each step's gradient
norm before clipping. Per row it prints how many seeds diverged (and at which batch), and over the
others' steps after the first 100 the largest gradient norm and the number of steps whose norm passed
20 (a healthy step is about 2-7): runs that came near diverging and recovered; and the largest rotation
angle f_PP's viewpoint heads asked for (before model.viewpoint's bound), over the healthy seeds and per
diverged seed: the unbounded heads of the diverged runs had run away to hundreds of radians. --set
applies to every row (e.g. --set lr=0.0007, --set model.viewpoint=axis-angle).
"""

import argparse
import json
import multiprocessing
import re
import statistics
from concurrent.futures import ProcessPoolExecutor

import torch

import repro.train.loop as loop
from repro.config import ConfigError, parse_overrides
from repro.presets import preset_config
from repro.train.data import split_tensors
from repro.train.run import clip_features, device_for_training, open_inputs

ROWS = {
    "Baseline": ["mode=baseline"],
    "Normal augmentation (supervised)": ["mode=baseline", "augment=normal-supervised"],
    "lambda3=0.001": ["mode=iete", "ratio=0.6", "lambda_con=0.001"],
}
WHERE = re.compile(r"at epoch \d+, batch \d+")  # in a TrainingDiverged message
SPIKE = 20.0  # a gradient norm this far above a healthy step's
# Left out of the norms' summary: a He draw's first steps have norms up to about 12,000 while its
# initial heatmaps shrink (RESULTS.md), which says nothing about diverging later.
SETTLE = 100


class _Enough(Exception):
    """Raised from on_step once the asked steps are done."""


def first_steps(preset: str, overrides: dict, steps: int | None) -> dict:
    """The first `steps` steps (None: the first epoch; more than an epoch runs on into the next ones) of
    one training: each step's pre-clip gradient norm, and the divergence message if the guard tripped."""
    torch.set_num_threads(1)
    cfg = preset_config(preset, overrides)
    inputs = open_inputs(cfg)
    train = split_tensors(inputs.splits["train"])
    clip = clip_features(inputs.encoder, train)
    restyled = split_tensors(inputs.splits["restyled"]) if cfg.restyled else None
    device = device_for_training()
    state = loop.new_state(cfg, clip.image.shape[1] if clip is not None else cfg.model.clip_dim, device)
    norms, angles = [], []
    clip_gradients = loop.clip_gradients
    viewpoint = state.model.pose_prior.viewpoint

    def recording(params, max_norm):
        total = clip_gradients(params, max_norm)
        norms.append(total.item())
        return total

    def on_step(b):
        if steps is not None and len(norms) >= steps:
            raise _Enough

    def recording_viewpoint(axis_angle):  # the heads' angle, before model.viewpoint's map
        angles.append(axis_angle.detach().norm(dim=-1).max())
        return viewpoint(axis_angle)

    loop.clip_gradients = recording
    state.model.pose_prior.viewpoint = recording_viewpoint
    train_inputs = loop.batch_inputs(cfg, train, device)
    restyled_inputs = loop.batch_inputs(cfg, restyled, device) if restyled is not None else None
    message = None
    try:
        for _ in range(cfg.epochs if steps is not None else 1):
            loop.train_epoch(cfg, state, train, clip, device, on_step, train_inputs, restyled_inputs)
            state.epoch += 1
    except _Enough:
        pass
    except loop.TrainingDiverged as err:
        message = str(err)
    angle = torch.stack(angles).max().item() if angles else float("nan")
    return {"seed": cfg.seed, "norms": norms, "diverged": message, "angle": angle}


def summary(results: list[dict]) -> dict:
    """Per row: the seeds that diverged (with their messages), and over the others' steps after the first
    SETTLE the largest gradient norm and how many passed SPIKE; the largest viewpoint angle of each seed."""
    healthy = [r["norms"][SETTLE:] for r in results if r["diverged"] is None]
    return {
        "seeds": len(results),
        "diverged": {r["seed"]: r["diverged"] for r in results if r["diverged"] is not None},
        "max_norm": [round(max(norms), 1) for norms in healthy if norms],  # none when a run is under SETTLE steps
        "spike_steps": [sum(n > SPIKE for n in norms) for norms in healthy],
        "median_norm": round(statistics.median(n for norms in healthy for n in norms), 2) if any(healthy) else None,
        "max_angle": {r["seed"]: round(r["angle"], 3) for r in results},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--seeds", type=int, default=12, help="seeds per row: FIRST..FIRST+N-1")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--steps", type=int, help="steps per training (default: the first epoch; may run past it)")
    parser.add_argument("--workers", type=int, default=2, help="processes of one thread each")
    parser.add_argument("--row", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"), help="a row: a name and its overrides")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every row")
    parser.add_argument("--json", action="store_true", help="print one JSON object {row: summary}")
    args = parser.parse_args()
    try:
        common = parse_overrides(args.set)
    except ConfigError as err:
        raise SystemExit(f"repro: error: {err}") from None
    rows = {}
    for name, *items in args.row or [[name, *items] for name, items in ROWS.items()]:
        try:  # bad rows fail here, before any training
            rows[name] = {**parse_overrides(items, "--row"), **common}
            if preset_config(args.preset, rows[name]).grad_clip <= 0:
                raise ConfigError("grad_clip must be > 0: the bench records the norms where the trainer clips them")
        except ConfigError as err:
            raise SystemExit(f"repro: error: row {name!r}: {err}") from None
    jobs = [
        (name, {**overrides, "seed": seed})
        for name, overrides in rows.items()
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(name, pool.submit(first_steps, args.preset, overrides, args.steps)) for name, overrides in jobs]
        results = {name: [] for name in rows}
        for name, future in futures:
            results[name].append(future.result())
    out = {name: summary(r) for name, r in results.items()}
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"preset {args.preset}, overrides {common or 'none'}, seeds {args.first_seed}-{args.first_seed + args.seeds - 1}, steps {args.steps or 'the first epoch'}"
    )
    for name, s in out.items():
        angle = s["max_angle"]
        diverged = ", ".join(
            f"seed {seed} {WHERE.search(m)[0]}, viewpoint angle {angle[seed]:.4g} rad" for seed, m in s["diverged"].items()
        )
        healthy_angle = max((a for seed, a in angle.items() if seed not in s["diverged"]), default=float("nan"))
        print(
            f"{name:32s} diverged {len(s['diverged'])} of {s['seeds']}{f' ({diverged})' if diverged else ''}; "
            f"the others: largest gradient norm {max(s['max_norm'], default=float('nan'))}, "
            f"steps over {SPIKE:g} {sum(s['spike_steps'])} (per seed {s['spike_steps']}), median norm {s['median_norm']}, "
            f"largest viewpoint angle {healthy_angle:.4g} rad"
        )


if __name__ == "__main__":
    main()
