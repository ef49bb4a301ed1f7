"""Training throughput per preset, and the cost of the CLIP branch (run by hand).

    .venv/bin/python bench/train.py [--presets tiny small] [--steps 20] [--clip-arch synthclip]

For each preset it times, in one process and on the same batches: a Baseline step; an IE+TE step
with f_CI and f_CT read from the frozen-feature cache (what training does); and an IE+TE step that
runs CLIP on every batch ("CLIP in the loop", what the cache avoids). It prints images/s and the
ratios to the Baseline step. CLIP weights do not change the cost, so a randomly initialised model
of the chosen architecture is used and nothing needs pre-training.
"""

import argparse
import dataclasses
import time

import open_clip
import torch

from repro.clip import synthclip
from repro.clip.encoders import OpenClipEncoder
from repro.clip.prompts import all_prompts
from repro.presets import preset_config
from repro.train.data import load_split
from repro.train.loop import ClipFeatures, new_state, train_epoch
from repro.train.run import device_for_training


class ClipInTheLoop:
    """Duck-types ClipFeatures: indexing encodes the batch's images / prompts on the spot."""

    def __init__(self, encoder, images):
        prompts = all_prompts()
        self.image = _Lazy(lambda idx: encoder.encode_images(images[idx]), len(images))
        self.text = _Lazy(lambda idx: encoder.encode_texts([prompts[i] for i in idx.tolist()]), len(prompts))


class _Lazy:
    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def __getitem__(self, idx):
        return self.fn(idx)

    def __len__(self):
        return self.n


def _rate(cfg, train, clip, device) -> float:
    state = new_state(cfg, clip.image[torch.arange(1)].shape[1] if clip else cfg.model.clip_dim, device)
    times = []

    def tick(b):
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    train_epoch(cfg, state, train, clip, device, on_step=tick)
    warm = 2  # the first steps include allocation and kernel selection
    return cfg.batch_size * (len(times) - 1 - warm) / (times[-1] - times[warm])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--clip-arch", default="synthclip", help="open_clip architecture for the in-the-loop step")
    args = parser.parse_args()
    device = device_for_training()
    synthclip.register()
    net = open_clip.create_model(args.clip_arch)
    encoder = OpenClipEncoder(net, args.clip_arch, f"{args.clip_arch}-random", "random", str(device))
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, CLIP {args.clip_arch}")
    for preset in args.presets:
        base = preset_config(preset)
        cfg = dataclasses.replace(base, n_train=base.batch_size * args.steps)
        train = load_split(cfg.source, "train", cfg.n_train, cfg.image_size, cfg.data_root)
        cached = ClipFeatures(encoder.encode_images(train.images), encoder.encode_texts(all_prompts()))
        rates = {
            "baseline": _rate(dataclasses.replace(cfg, mode="baseline"), train, None, device),
            "IE+TE cached": _rate(cfg, train, cached, device),
            "IE+TE CLIP in loop": _rate(cfg, train, ClipInTheLoop(encoder, train.images), device),
        }
        line = ", ".join(f"{k} {v:.1f} img/s ({rates['baseline'] / v:.2f}x step time)" for k, v in rates.items())
        print(f"{preset:6s} input {cfg.model.input_size}px width {cfg.model.width}: {line}")


if __name__ == "__main__":
    main()
