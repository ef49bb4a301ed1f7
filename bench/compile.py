"""Whether torch.compile pays for the training step on this machine (run by hand).

    .venv/bin/python bench/compile.py [--preset small] [--threads 1] [--steps 40] [--rounds 3] [--mode default]

Times whole training steps of the preset's Baseline on its default path, eager against the model
wrapped in torch.compile (inductor), in one process on the same batches, alternating the two for
--rounds rounds (medians). Prints the compiled path's time to its first step (the compile, paid by
every training process) and both images/s with their ratio. The suite trains eagerly: compile is
used only where it is measured to pay, compile time included (RESULTS.md).
"""

import argparse
import dataclasses
import statistics
import time

import torch

from repro.presets import preset_config
from repro.train.data import load_split
from repro.train.loop import new_state, train_epoch
from repro.train.run import device_for_training

WARM = 2  # steps left out of every timing


def _epoch_times(cfg, state, train, device) -> list[float]:
    times = []

    def tick(b):
        if device.type == "cuda":  # steps do not wait for the device: a step's time is its kernels'
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    train_epoch(cfg, state, train, None, device, on_step=tick)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a `make run` worker uses 1)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", default="default", help="torch.compile mode")
    args = parser.parse_args()
    if args.steps < WARM + 2:
        parser.error(f"--steps must be at least {WARM + 2}")
    torch.set_num_threads(args.threads)
    base = preset_config(args.preset)
    cfg = dataclasses.replace(base, n_train=base.batch_size * args.steps, mode="baseline")
    train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
    device = device_for_training()
    eager, compiled = new_state(cfg, cfg.model.clip_dim, device), new_state(cfg, cfg.model.clip_dim, device)
    start = time.perf_counter()
    compiled.model = torch.compile(compiled.model, mode=None if args.mode == "default" else args.mode)
    first = _epoch_times(cfg, compiled, train, device)[0] - start
    rates = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        for name, state in (("eager", eager), ("compiled", compiled)):
            t = _epoch_times(cfg, state, train, device)
            rates[name].append(cfg.batch_size * (len(t) - 1 - WARM) / (t[-1] - t[WARM]))
    eager_rate, compiled_rate = statistics.median(rates["eager"]), statistics.median(rates["compiled"])
    print(
        f"{args.preset}, {args.threads} thread(s), {args.rounds} rounds of {args.steps} steps: compiled first step after "
        f"{first:.1f} s; eager {eager_rate:.1f} img/s, compiled {compiled_rate:.1f} img/s: {compiled_rate / eager_rate:.2f}x"
    )


if __name__ == "__main__":
    main()
