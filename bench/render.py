"""Rendering throughput of the synthetic world, as `repro data build` renders it.

Run by hand on a quiet machine: `.venv/bin/python bench/render.py [--size 128] [--n 2048] [--workers 2] [--repeats 1] [--domains ...]`.
Per domain: images/s in this process (torch's default threads, default allocator) and in `--workers`
single-threaded worker processes (what the cache builder runs: one per core, tuned allocator; the
pool's start-up is timed, the forkserver's is not), their ratio, and each figure's ratio to the
300 images/s target of the foundation issue. With --repeats R each figure is the median of R runs
(this 2-core machine varies by up to 1.4x between identical runs).
"""

import argparse
import os
import statistics
import time

import torch

from repro.data.cache import render_batches
from repro.data.domains import DOMAINS

TARGET = 300.0


def rate(name: str, split: str, n: int, size: int, workers: int, repeats: int = 1) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in render_batches(name, split, 0, n, size, workers):
            pass
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=1, help="median of this many runs per figure")
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads in-process, {args.workers} worker processes, "
        f"{args.size}x{args.size}, {args.n} images per run, median of {args.repeats} run(s)"
    )
    for name in args.domains:
        split = next(iter(DOMAINS[name].splits))
        # Warm-up, which also starts the forkserver the worker pools fork from (once per process, ~3 s).
        rate(name, split, 64, args.size, 1)
        rate(name, split, 64 * args.workers, args.size, args.workers)
        single = rate(name, split, args.n, args.size, 1, args.repeats)
        multi = rate(name, split, args.n, args.size, args.workers, args.repeats)
        print(
            f"{name:11s} in-process {single:6.1f} img/s ({single / TARGET:.2f}x target)   "
            f"{args.workers} workers {multi:6.1f} img/s ({multi / TARGET:.2f}x target)   workers/in-process {multi / single:.2f}x"
        )


if __name__ == "__main__":
    main()
