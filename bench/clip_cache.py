"""Feature-cache fill throughput for synthclip (run by hand).

    .venv/bin/python bench/clip_cache.py [--n 2048] [--batch 64]

Fills f_CI for the first N training renders of synth-frei into a fresh cache folder and prints
images/s, then reads the same entry back (a cache hit) and prints that time too. Uses the
pretrained synthclip:small when it is stored, else the same architecture with random
weights (the cost does not depend on the weights).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import open_clip
import torch

from repro.clip import synthclip
from repro.clip.encoders import OpenClipEncoder, build_encoder
from repro.clip.features import image_features
from repro.data.registry import open_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if synthclip.parse_tag(None).checkpoint_path().is_file():  # the default recipe, when already pre-trained
        encoder = build_encoder(synthclip.parse_tag(None).spec)
    else:
        synthclip.register()
        encoder = OpenClipEncoder(open_clip.create_model(synthclip.MODEL_NAME), synthclip.MODEL_NAME, "synthclip-random", "random")
    dataset = open_dataset("synth-frei", split="train", n=args.n)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REPRO_CACHE"] = str(Path(tmp))  # a cold feature cache; the renders were opened above
        start = time.perf_counter()
        image_features(encoder, dataset, batch_size=args.batch)
        fill = time.perf_counter() - start
        start = time.perf_counter()
        image_features(encoder, dataset, batch_size=args.batch)
        hit = time.perf_counter() - start
    print(f"{encoder.identity}, {torch.get_num_threads()} threads, {args.n} images at {dataset.size}px -> {encoder.image_size}px")
    print(f"fill {args.n / fill:.1f} img/s ({fill:.1f} s); cached read {hit * 1000:.0f} ms ({fill / hit:.0f}x faster)")


if __name__ == "__main__":
    main()
