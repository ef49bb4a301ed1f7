"""Rendering throughput of the synthetic world (drawing parameters + ray casting + backdrops).

Run by hand: `.venv/bin/python bench/render.py [--size 128] [--n 1024] [--batch 64]`.
Prints images/s per domain and the ratio to the 300 images/s target of the foundation issue.
"""

import argparse
import time

import torch

from repro.data.domains import DOMAINS
from repro.data.synthetic import render_range

TARGET = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}, batch {args.batch}")
    for name, domain in DOMAINS.items():
        split = next(iter(domain.splits))
        render_range(domain, split, 0, args.batch, args.size)  # warm-up
        start = time.perf_counter()
        for b in range(0, args.n, args.batch):
            render_range(domain, split, b, min(args.n, b + args.batch), args.size)
        rate = args.n / (time.perf_counter() - start)
        print(f"{name:11s} {rate:7.1f} img/s  ({rate / TARGET:.2f}x the {TARGET:.0f} img/s target)")


if __name__ == "__main__":
    main()
