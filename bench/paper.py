"""The paper preset on FreiHAND-format data: training images/s, the share of the GPU's dense bf16 peak it
uses, the time to the first training step with a cold and a warm crop store, peak host and device
memory (run by hand, on a GPU; on a CPU it runs a small size so that it can be tried).

    .venv/bin/python bench/paper.py [--images N] [--steps N] [--peak-tflops T] [--set KEY=VALUE ...] [--json]

It writes synth-frei in FreiHAND's layout into a temporary folder with `repro data export` (N training
images = N/4 poses x 4 versions, 32 evaluation images) and, with a fresh cache folder there, does what
`repro train --preset paper --source freihand --data-root DIR` does before its first optimiser step,
through the same functions (repro.train.data, repro.clip.features, repro.train.loop; MLflow aside):
open the splits and the CLIP encoder, map the training split's crop store (building it first when
cold), compute f_CI and f_CT (cached after the first time), map the validation split's store, build the
model and take a step. It does this twice: cold (nothing cached), then warm in a new process, as the
next training would start (the stores and features cached; CUDA, cuDNN's algorithm choice and the
model afresh); then the cold one trains on for --steps steps, timed. The CLIP is synthclip with
random weights: CLIP runs once per image, before training, and its weights do not change the cost.

FLOPs are counted by torch.utils.flop_counter on one forward pass of the run's model (its CLIP fusion
included); a training image costs 3 forwards (forward and backward). The share of the peak divides
the achieved FLOP/s by the GPU's dense bf16 peak from PEAK_BF16_TFLOPS, or --peak-tflops.
"""

import argparse
import json
import math
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense bf16 tensor-core peaks from the vendor's datasheets, by a part of the name torch reports
# (longest match first: "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS = {"H200 NVL": 835.0, "H200": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0}
EVAL_IMAGES = 32


def peak_tflops(name: str) -> float | None:
    return next((PEAK_BF16_TFLOPS[k] for k in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True) if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def first_step(cfg, device: torch.device) -> tuple[dict[str, float], tuple]:
    """Seconds per phase up to the end of the first optimiser step, in train_run's order; then the rest of
    that epoch. Returns the phases and (state, train split, CLIP features) to train on."""
    from repro.clip.encoders import build_encoder
    from repro.clip.features import image_features, text_features
    from repro.train.data import open_split, split_tensors
    from repro.train.loop import ClipFeatures, new_state, train_epoch

    phases = dict.fromkeys(
        ("CUDA start-up", "open splits + CLIP encoder", "crop stores (train, val)", "CLIP features", "model + first step"), 0.0
    )
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        phases[phase] += now - clock[0]
        clock[0] = now

    if device.type == "cuda":
        torch.zeros(1, device=device)
        sync(device)
    lap("CUDA start-up")

    opened = {role: open_split(cfg.source, role, getattr(cfg, f"n_{role}"), cfg.image_size, cfg.data_root) for role in ("train", "val")}
    encoder = build_encoder(cfg.clip, cfg.clip_checkpoint)
    lap("open splits + CLIP encoder")
    train = split_tensors(opened["train"])
    lap("crop stores (train, val)")
    clip = ClipFeatures(image=image_features(encoder, train.dataset), text=text_features(encoder))
    lap("CLIP features")
    split_tensors(opened["val"])
    lap("crop stores (train, val)")
    state = new_state(cfg, clip.image.shape[1], device)

    def after(step: int) -> None:
        if step == 0:
            sync(device)
            lap("model + first step")

    train_epoch(cfg, state, train, clip, device, on_step=after)
    state.epoch += 1
    phases["total"] = sum(phases.values())
    return phases, (state, train, clip)


def fresh_first_step(cfg) -> dict[str, float]:
    """first_step's phases in this process (a new one: see run)."""
    from repro.clip.features import feature_device

    return first_step(cfg, feature_device())[0]


def train_rate(cfg, device: torch.device, state, train, clip, steps: int) -> dict:
    """Images/s over whole epochs of at least `steps` steps in all, after the warm-up epoch first_step ran."""
    from repro.train.loop import train_epoch

    per_epoch = len(train) // cfg.batch_size
    epochs = max(1, math.ceil(steps / per_epoch))
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch(cfg, state, train, clip, device)
        state.epoch += 1
    sync(device)
    seconds = time.perf_counter() - start
    images = epochs * per_epoch * cfg.batch_size
    return {"steps": epochs * per_epoch, "images": images, "seconds": seconds, "images_per_s": images / seconds}


def forward_gflop(cfg, model, clip_dim: int, device: torch.device) -> float:
    """GFLOP of one image's forward pass through the run's model, with its CLIP fusion when it has one."""
    x = torch.zeros(1, 3, cfg.model.input_size, cfg.model.input_size, device=device)
    fusion = torch.zeros(1, clip_dim, device=device) if cfg.uses_clip else None
    model.eval()  # one image: batch statistics would need more
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, fusion)
    return counter.get_total_flops() / 1e9


def effective_precision(cfg, device: torch.device) -> str:
    """What the training loop computes in: repro.train.evaluate's rule for RunConfig.precision where the
    trainer has one, else its earlier rule, bf16 autocast on CUDA."""
    from repro.train import evaluate

    rule = getattr(evaluate, "effective_precision", None)
    return rule(getattr(cfg, "precision", "bf16"), device) if rule else "bf16" if device.type == "cuda" else "fp32"


def random_synthclip(path: Path) -> Path:
    """A synthclip checkpoint with seeded random weights."""
    import open_clip

    from repro.clip import synthclip

    synthclip.register()
    torch.manual_seed(0)
    torch.save(open_clip.create_model(synthclip.MODEL_NAME).state_dict(), path)
    return path


def export_freihand(root: Path, images: int) -> float:
    from repro.data.export import export

    start = time.perf_counter()
    export("synth-frei", "freihand", root, n=images, split="train")
    export("synth-frei", "freihand", root, n=EVAL_IMAGES, split="val")
    return time.perf_counter() - start


def run(args) -> dict:
    from repro.clip.features import feature_device
    from repro.presets import preset_config

    device = feature_device()
    gpu = device.type == "cuda"
    images = args.images or (512 if gpu else 128)
    steps = args.steps or (96 if gpu else 8)
    if images % 4:
        raise SystemExit(f"--images {images}: FreiHAND's training split holds 4 versions of each pose; give a multiple of 4")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["REPRO_CACHE"] = str(tmp / "cache")  # cold: no store, no features
        export_s = export_freihand(tmp / "data" / "freihand", images)
        checkpoint = random_synthclip(tmp / "synthclip.pt")
        overrides = {"source": "freihand", "targets": "", "data_root": str(tmp / "data"), "n_train": None, "n_val": None}
        overrides.update(clip="synthclip", clip_checkpoint=str(checkpoint), **args.overrides)
        cfg = preset_config("paper" if gpu else "small", overrides)
        cold, (state, train, clip) = first_step(cfg, device)
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # $REPRO_CACHE, set above, goes with it
            warm = pool.apply(fresh_first_step, (cfg,))
        rate = train_rate(cfg, device, state, train, clip, steps)
        gflop = forward_gflop(cfg, state.model, clip.image.shape[1], device)
        store_bytes = sum(f.stat().st_size for f in (tmp / "cache" / "store").rglob("images.npy"))
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    peak = args.peak_tflops or (peak_tflops(name) if gpu else None)
    achieved = 3 * gflop * rate["images_per_s"] / 1e3  # TFLOP/s
    return {
        "device": name,
        "size": "paper preset" if gpu else "small preset's sizes (a CPU: not the paper's)",
        "config": {k: v for k, v in cfg.flat().items() if k in ("image_size", "model.input_size", "model.width", "batch_size", "mode")},
        "precision": effective_precision(cfg, device),
        "images": {"training": images, "evaluation": EVAL_IMAGES, "export_s": export_s, "store_bytes": store_bytes},
        "first_step_s": {"cold": cold, "warm": warm},
        "training": rate,
        "forward_gflop_per_image": gflop,
        "achieved_tflops": achieved,
        "peak_bf16_tflops": peak,
        "peak_share": achieved / peak if peak else None,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_device_gib": torch.cuda.max_memory_allocated(device) / 2**30 if gpu else None,
    }


def summary(r: dict) -> str:
    c = r["config"]
    lines = [
        f"bench/paper.py on {r['device']}: {r['size']}; {c['model.input_size']} px input from {c['image_size']} px crops, "
        f"width {c['model.width']:g}, batch {c['batch_size']}, mode {c['mode']}, precision {r['precision']}",
        f"data: synth-frei exported as FreiHAND ({r['images']['training']} training = {r['images']['training'] // 4} poses x 4, "
        f"{r['images']['evaluation']} evaluation) in {r['images']['export_s']:.1f} s; training store {r['images']['store_bytes'] / 2**20:.0f} MiB",
        f"time to the first training step {'cold store':>14} {'warm store':>12}",
    ]
    for phase in r["first_step_s"]["cold"]:
        lines.append(f"  {phase:<31}{r['first_step_s']['cold'][phase]:>12.2f} s{r['first_step_s']['warm'][phase]:>11.2f} s")
    t = r["training"]
    lines.append(f"training: {t['images_per_s']:.1f} images/s ({t['steps']} steps, {t['images']} images in {t['seconds']:.2f} s)")
    share = f" = {100 * r['peak_share']:.1f}% of {r['peak_bf16_tflops']:g} TFLOP/s dense bf16" if r["peak_share"] is not None else ""
    lines.append(
        f"compute: {r['forward_gflop_per_image']:.2f} GFLOP per image forward (counted), x3 per training image -> "
        f"{r['achieved_tflops']:.3f} TFLOP/s{share}"
    )
    device_memory = f"; peak device {r['peak_device_gib']:.2f} GiB allocated" if r["peak_device_gib"] is not None else ""
    lines.append(f"memory: peak host RSS {r['peak_rss_gib']:.2f} GiB{device_memory}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="training images to export (default: 512 on a GPU, 128 on a CPU)")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps to time, in whole epochs (default: 96 on a GPU, 8 on a CPU)"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: by its name)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. --set batch_size=128"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    args = parser.parse_args()
    if bad := [item for item in args.sets if "=" not in item]:
        parser.error(f"--set expects KEY=VALUE, got {bad[0]!r}")
    args.overrides = dict(item.split("=", 1) for item in args.sets)
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else summary(result))


if __name__ == "__main__":
    main()
