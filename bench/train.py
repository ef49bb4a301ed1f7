"""Training throughput per preset: the default numerics against the reference path (run by hand).

    .venv/bin/python bench/train.py [--presets tiny small] [--steps 20] [--rounds 3] [--json | --sections] [--clip-arch synthclip]

For each preset it times whole training steps (batching, forward, losses, backward, Adam), in one
process and on the same batches, of the Baseline on the reference path and on the default path
(RunConfig's defaults), alternating the two for --rounds rounds and taking the median, so that noise
from other processes hits both. The reference path is the step as issue #17 measured it: precision
fp32, memory_format contiguous, PyTorch's own Adam (the trainer before v4), every batch resized from
the stored crops, LeakyReLU out of place and the gradients clipped by clip_grad_norm_ (the trainer
before BatchInputs, in-place LeakyReLU and loop.clip_gradients, which compute the same values). It
prints images/s and the ratio default / reference; --json prints only that, as one JSON object
{"small": {"reference_img_s": ..., "default_img_s": ..., "ratio": ...}, "tiny": {...}}.
The threads are torch's default unless $OMP_NUM_THREADS says (a study's two workers on two cores train
on one thread each). A training prepares its inputs before its first step: that is not timed.

Without --json it also times, on the default path and relative to the default Baseline step: Table 6's
normal-supervised and normal-contrastive steps (the augmentation's cost; normal-contrastive also runs
a second forward pass for its positive), an IE+TE step with f_CI and f_CT read from the frozen-feature
cache (what training does) and an IE+TE step that runs CLIP on every batch ("CLIP in the loop", what
the cache avoids). CLIP weights do not change the cost, so a randomly initialised model of the chosen
architecture is used and nothing needs pre-training.

With --sections it prints instead where the default Baseline and IE+TE steps spend their time, in ms
per step (medians of the rounds): the model's forward pass, the losses, backward, the gradients'
copy to the fp32 masters, clipping, Adam, the working weights' refresh, and the rest (batching, the
divergence guard, the lr, the progress bar). It wraps those calls with a clock and leaves the step as
it is: torch.profiler adds a cost to every operator call that, on a CPU, put about four times the
real time on the 64 x 64 layers' elementwise operators (RESULTS.md).
"""

import argparse
import contextlib
import dataclasses
import functools
import json
import statistics
import time
from unittest import mock

import torch

import repro.train.loop as loop
from repro.model.hand_pose import HandPoseModel
from repro.presets import preset_config
from repro.train.data import load_split
from repro.train.evaluate import BatchInputs, effective_precision
from repro.train.loop import ClipFeatures, new_state, train_epoch
from repro.train.run import device_for_training
from repro.train.working_weights import WorkingWeights

WARM = 2  # steps left out of every timing: the first ones include allocation and kernel selection


class ClipInTheLoop:
    """Duck-types ClipFeatures: indexing encodes the batch's images / prompts on the spot."""

    def __init__(self, encoder, images, prompts):
        self.image = _Lazy(lambda idx: encoder.encode_images(images[idx]), len(images))
        self.text = _Lazy(lambda idx: encoder.encode_texts([prompts[i] for i in idx.tolist()]), len(prompts))


class _Lazy:
    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def __getitem__(self, idx):
        return self.fn(idx)

    def __len__(self):
        return self.n


def _rate(cfg, train, clip, device, before: bool, clock: "_Clock | None" = None) -> float:
    """Images/s of one epoch of `cfg` over `train`, its first WARM steps left out; `before`: with the
    input, activation and clipping code of the step issue #17 measured; `clock`: sections timed."""
    state = new_state(cfg, clip.image[torch.arange(1)].shape[1] if clip else cfg.model.clip_dim, device)
    inputs = BatchInputs(train.images, cfg.model.input_size, device, cfg.memory_format, prepare=not before)
    if before:
        for module in state.model.modules():
            if isinstance(module, torch.nn.LeakyReLU):
                module.inplace = False
    times = []

    def tick(b):
        if device.type == "cuda":  # steps do not wait for the device: a step's time is its kernels'
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        if clock is not None:
            clock.counting = len(times) > WARM  # the sections of the steps that _rate times

    with contextlib.ExitStack() as patches:
        if before:
            patches.enter_context(mock.patch.object(loop, "clip_gradients", _torch_clip))
        if clock is not None:
            clock.patch(patches)
        train_epoch(cfg, state, train, clip, device, on_step=tick, inputs=inputs)
    steps, seconds = len(times) - 1 - WARM, times[-1] - times[WARM]
    if clock is not None:
        clock.steps, clock.total_s = steps, seconds
    return cfg.batch_size * steps / seconds


class _Clock:
    """Wall time of a step's parts, summed over the steps _rate times. Each part is a call wrapped with
    the clock; "losses" is the objective's call less the model's forward passes within it."""

    SECTIONS = {  # name: (owner, attribute) of the wrapped call
        "forward": (HandPoseModel, "forward"),
        "objective": None,  # patched per objective class below
        "backward": (torch.Tensor, "backward"),
        "to fp32 masters": (WorkingWeights, "gradients_to_masters"),
        "clipping": (loop, "clip_gradients"),
        "Adam": (torch.optim.Adam, "step"),
        "refresh": (WorkingWeights, "refresh"),
    }

    def __init__(self, device):
        self.device, self.counting = device, False
        self.sums = dict.fromkeys(self.SECTIONS, 0.0)
        self.steps, self.total_s = 0, 0.0

    def _timed(self, name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            if self.counting:
                self.sums[name] += time.perf_counter() - t0
            return out

        return wrapper

    def patch(self, stack: contextlib.ExitStack) -> None:
        for name, target in self.SECTIONS.items():
            if target is not None:
                owner, attr = target
                stack.enter_context(mock.patch.object(owner, attr, self._timed(name, getattr(owner, attr))))
        for objective in {o for o in loop.OBJECTIVES.values() if "__call__" in vars(o)}:  # inherited: wrapped once
            stack.enter_context(mock.patch.object(objective, "__call__", self._timed("objective", objective.__call__)))

    def ms_per_step(self) -> dict[str, float]:
        """Each part's ms per step; "losses" and "rest" (batching, guard, lr, progress bar) by difference."""
        ms = {name: 1000 * s / self.steps for name, s in self.sums.items()}
        ms["losses"] = ms.pop("objective") - ms["forward"]
        ms["rest"] = 1000 * self.total_s / self.steps - sum(ms.values())
        return {"step": 1000 * self.total_s / self.steps, **ms}


def _torch_clip(params, max_norm):
    torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)


def _in_turn(paths: dict, rounds: int, measure) -> dict[str, list]:
    """measure(cfg, clip, before) of each path, over `rounds` rounds that run every path in turn, so that
    noise from other processes hits them all."""
    results = {name: [] for name in paths}
    for _ in range(rounds):
        for name, path in paths.items():
            results[name].append(measure(*path))
    return results


def _medians(paths: dict, train, device, rounds: int) -> dict[str, float]:
    """Median images/s of each (cfg, clip, before) path."""
    rates = _in_turn(paths, rounds, lambda cfg, clip, before: _rate(cfg, train, clip, device, before))
    return {name: statistics.median(r) for name, r in rates.items()}


def _sections(paths: dict, train, device, rounds: int) -> dict[str, dict[str, float]]:
    """Per (cfg, clip, before) path, the median of each part's ms per step (_Clock)."""

    def parts(cfg, clip, before):
        clock = _Clock(device)
        _rate(cfg, train, clip, device, before, clock)
        return clock.ms_per_step()

    runs = _in_turn(paths, rounds, parts)
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}


def _clip_paths(cfg, train, arch: str, device) -> dict:
    import open_clip

    from repro.clip import synthclip
    from repro.clip.encoders import OpenClipEncoder
    from repro.clip.prompts import all_prompts

    synthclip.register()
    encoder = OpenClipEncoder(open_clip.create_model(arch), arch, f"{arch}-random", "random", str(device))
    prompts = all_prompts()
    cached = ClipFeatures(encoder.encode_images(train.images), encoder.encode_texts(prompts))
    return {"IE+TE cached": (cfg, cached, False), "IE+TE CLIP in loop": (cfg, ClipInTheLoop(encoder, train.images, prompts), False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=20, help=f"steps per timed epoch (the first {WARM} are not counted)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every path in turn; the median is reported")
    parser.add_argument("--json", action="store_true", help="print only the reference and default paths, as one JSON object")
    parser.add_argument("--clip-arch", default="synthclip", help="open_clip architecture for the CLIP steps")
    parser.add_argument("--sections", action="store_true", help="where the default Baseline and IE+TE steps spend their time")
    args = parser.parse_args()
    if args.json and args.sections:
        parser.error("--json and --sections print different things: choose one")
    if args.steps < WARM + 2:
        parser.error(f"--steps must be at least {WARM + 2}: the first {WARM} steps are not timed")
    device = device_for_training()
    if not args.json:
        print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds of {args.steps} steps")
    out = {}
    for preset in args.presets:
        base = preset_config(preset)
        cfg = dataclasses.replace(base, n_train=base.batch_size * args.steps)
        train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
        baseline = dataclasses.replace(cfg, mode="baseline")
        if args.sections:
            paths = {"Baseline": (baseline, None, False), "IE+TE": _clip_paths(cfg, train, args.clip_arch, device)["IE+TE cached"]}
            ms = _sections(paths, train, device, args.rounds)
            print(f"{preset}: ms per step, medians of {args.rounds} rounds")
            print(f"{'':18s}" + "".join(f"{name:>10s}" for name in ms))
            for part in next(iter(ms.values())):
                print(f"{part:18s}" + "".join(f"{ms[name][part]:10.2f}" for name in ms))
            continue
        reference = dataclasses.replace(baseline, precision="fp32", memory_format="contiguous", adam_impl="torch")
        paths = {"reference": (reference, None, True), "default": (baseline, None, False)}
        if not args.json:
            paths["reference numerics"] = (reference, None, False)
            paths |= {
                name: (dataclasses.replace(baseline, augment=name), None, False) for name in ("normal-supervised", "normal-contrastive")
            }
            paths |= _clip_paths(cfg, train, args.clip_arch, device)
        rates = _medians(paths, train, device, args.rounds)
        out[preset] = {
            "reference_img_s": round(rates["reference"], 1),
            "default_img_s": round(rates["default"], 1),
            "ratio": round(rates["default"] / rates["reference"], 3),
        }
        if not args.json:
            print(
                f"{preset:6s} input {cfg.model.input_size}px width {cfg.model.width} batch {cfg.batch_size}: "
                f"reference (fp32, contiguous, torch Adam, per-batch resize) {rates['reference']:.1f} img/s, "
                f"default ({effective_precision(cfg.precision, device)}, {cfg.memory_format}, {cfg.adam_impl} Adam) "
                f"{rates['default']:.1f} img/s: {out[preset]['ratio']:.2f}x"
            )
            print(
                f"       the reference's numerics with today's inputs and activations {rates['reference numerics']:.1f} img/s: "
                f"default {rates['default'] / rates['reference numerics']:.2f}x"
            )
            others = [name for name in rates if name not in ("reference", "default", "reference numerics")]
            print(
                "       vs the default Baseline step: "
                + ", ".join(f"{n} {rates[n]:.1f} img/s ({rates['default'] / rates[n]:.2f}x step time)" for n in others)
            )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
