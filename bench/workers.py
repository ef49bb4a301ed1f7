"""Processes against threads on this machine: how `--workers` and OMP threads should share the cores
(run by hand, on a quiet machine).

    .venv/bin/python bench/workers.py [--preset small] [--steps 120] [--layouts 1x2 2x1] [--rounds 2]

A layout PxT runs P training processes of T threads each at once, every one training the preset's
Baseline (the default path) on the same batches for --steps steps, as a study's workers do. Each
process records when each of its steps ended; the layout's throughput is the images that all its
processes finished inside the window in which all of them were past their first steps and none had
ended, divided by that window, so start-up (imports, data loading) and the tails are left out. The
layouts run in turn for --rounds rounds; medians are printed with the ratio to the first layout.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WARM = 3  # steps each process runs before its timings count: allocation and kernel selection


def child(preset: str, steps: int) -> None:
    import dataclasses

    import torch

    from repro.presets import preset_config
    from repro.train.data import load_split
    from repro.train.loop import new_state, train_epoch
    from repro.train.run import device_for_training

    base = preset_config(preset)
    cfg = dataclasses.replace(base, mode="baseline", n_train=base.batch_size * steps)
    train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
    device = device_for_training()
    state = new_state(cfg, cfg.model.clip_dim, device)
    ends = []
    train_epoch(cfg, state, train, None, device, on_step=lambda b: ends.append(time.time()))
    print(json.dumps({"batch": cfg.batch_size, "ends": ends[WARM:], "threads": torch.get_num_threads()}))


def layout_rate(preset: str, steps: int, processes: int, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", "--preset", preset, "--steps", str(steps)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(processes)]
    printed = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(f"bench/workers.py: a {processes}x{threads} process failed (run it alone: {' '.join(cmd)})")
    outs = [json.loads(text.strip().splitlines()[-1]) for text in printed]
    assert all(o["threads"] == threads for o in outs), outs
    start, stop = max(o["ends"][0] for o in outs), min(o["ends"][-1] for o in outs)
    if stop <= start:
        sys.exit(f"bench/workers.py: the {processes} processes never trained at once; raise --steps")
    images = sum(o["batch"] * sum(start < t <= stop for t in o["ends"]) for o in outs)
    return images / (stop - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=120, help="training steps per process")
    parser.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="PROCESSESxTHREADS, e.g. 1x2 2x1 1x1")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.preset, args.steps)
    if args.steps < WARM + 10:
        parser.error(f"--steps must be at least {WARM + 10}")
    layouts = [tuple(int(n) for n in layout.split("x")) for layout in args.layouts]
    rates = {layout: [] for layout in layouts}
    for _ in range(args.rounds):
        for processes, threads in layouts:
            rates[(processes, threads)].append(layout_rate(args.preset, args.steps, processes, threads))
    first = statistics.median(rates[layouts[0]])
    print(f"{args.preset} Baseline, default path, {os.cpu_count()} cores, medians of {args.rounds} rounds:")
    for (processes, threads), values in rates.items():
        rate = statistics.median(values)
        print(f"  {processes} process(es) x {threads} thread(s): {rate:7.1f} img/s  ({rate / first:.2f}x {args.layouts[0]})")


if __name__ == "__main__":
    main()
