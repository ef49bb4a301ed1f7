"""Whether bf16 autocast pays on a device: a GPU with bf16 tensor cores, or a CPU where it is measured to.

On the CPU it is decided by measurement, once per machine, and kept. A CPU with AMX has bf16 matrix
units: bf16 pays. A CPU without AVX512-BF16 emulates bf16: it does not. In between, a CPU with
AVX512-BF16 alone has faster bf16 dot products, but autocast's casts around them may cost more than they
save, and which way it goes differs between CPUs of that kind (RESULTS.md, "bf16 on AVX512-BF16 CPUs").
So there the `small` network's forward and backward pass, the CPU presets' work, is timed in both
precisions (channels-last, alternated, medians) the first time a process asks, and bf16 is chosen only
if it is at least MARGIN times as fast. The record is kept in the cache under the CPU's identity and the
torch version, so every later run on this machine gets the same answer, and the precision a run computes
in is part of its identity (repro.train.identity). It is timed on one thread, as the CPU presets'
workers train, whatever the asking process runs on: a study's main process and its workers must agree on
every run's identity.

$REPRO_CPU_BF16=1 or 0 overrides the measurement (the tests pin 0, so identities do not depend on it).
"""

import functools
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from repro.errors import ConfigError
from repro.files import building, write_json
from repro.paths import cache_dir

OVERRIDE = "REPRO_CPU_BF16"
PRECISIONS = ("bf16", "fp32")  # what a network may ask to train in; bf16 only where it pays (`effective`)
MARGIN = 1.1  # bf16 must be this much faster: a near tie is not worth bf16's rounding
BATCH = 16  # the `small` preset's
WARM, STEPS, ROUNDS = 2, 4, 3


def _cpu_identity() -> str:
    """The first processor's vendor, family, model, stepping, name and flags (Linux), else what platform says:
    virtual machines report generic model names, so the name alone does not tell two CPUs apart."""
    keys = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags")
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
        return "\n".join(f"{k}: {fields.get(k, '').strip()}" for k in keys)
    except OSError:
        import platform

        return f"{platform.machine()} {platform.processor()}"


def record_path() -> Path:
    key = f"{_cpu_identity()}\ntorch {torch.__version__}"
    return cache_dir() / "machine" / f"cpu-bf16-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def measure(steps: int = STEPS, rounds: int = ROUNDS) -> dict[str, float]:
    """Images/s of the `small` network's forward and backward pass at batch 16 on one thread, fp32 and bf16
    autocast, channels-last, alternated over `rounds` rounds; medians. Leaves the global random stream and
    the thread count as they were."""
    from repro.model.hand_pose import HandPoseModel
    from repro.presets import preset_config

    cfg = preset_config("small").model
    with torch.random.fork_rng(devices=[]):  # a training asking mid-run keeps its random stream
        torch.manual_seed(0)
        model = HandPoseModel(cfg).to(memory_format=torch.channels_last)
        x = torch.randn(BATCH, 3, cfg.input_size, cfg.input_size).contiguous(memory_format=torch.channels_last)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            loss = sum(h.float().square().mean() for h in out.heatmaps) + out.coords.float().square().mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    def rate(bf16: bool) -> float:
        for _ in range(WARM):
            step(bf16)
        start = time.perf_counter()
        for _ in range(steps):
            step(bf16)
        return steps * BATCH / (time.perf_counter() - start)

    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(rounds):
            for name in rates:
                rates[name].append(rate(name == "bf16"))
    finally:
        torch.set_num_threads(threads)
    return {f"{name}_img_s": round(statistics.median(r), 1) for name, r in rates.items()}


@functools.cache
def native(device: torch.device) -> bool:
    """Whether bf16 autocast pays on `device`: the one answer for every network the suite trains there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and pays()


def effective(precision: str, device: torch.device) -> str:
    """What a network asked to train in `precision` ("bf16" or "fp32") computes in on `device`: bf16 only where it pays."""
    return "bf16" if precision == "bf16" and native(device) else "fp32"


def pays() -> bool:
    """Whether this machine's CPU trains faster under bf16 autocast (see the module's docstring)."""
    forced = os.environ.get(OVERRIDE)
    if forced is not None:
        if forced not in ("0", "1"):
            raise ConfigError(f"${OVERRIDE} is {forced!r}; expected 1 (bf16 autocast on the CPU) or 0 (fp32), or unset (measure)")
        return forced == "1"
    if torch.cpu._is_amx_tile_supported():
        return True
    if not torch.cpu._is_avx512_bf16_supported():
        return False
    path = record_path()
    with building(path):
        if path.exists():
            return bool(json.loads(path.read_text())["bf16"])
        print("repro: timing bf16 against fp32 on this CPU (once per machine) ...", file=sys.stderr, flush=True)
        rates = measure()
        bf16 = rates["bf16_img_s"] >= MARGIN * rates["fp32_img_s"]
        write_json(
            {
                **rates,
                "bf16": bf16,
                "margin": MARGIN,
                "cpu": _cpu_identity(),
                "torch": torch.__version__,
            },
            path,
        )
        print(
            f"repro: bf16 {rates['bf16_img_s']} img/s, fp32 {rates['fp32_img_s']} img/s: training on the CPU in "
            f"{'bf16' if bf16 else 'fp32'} (kept in {path}; ${OVERRIDE}=0 or 1 overrides)",
            file=sys.stderr,
        )
    return bf16
