"""What a training costs, measured by the trainer: wall time, the process's CPU time, its peak memory
(host and GPU), the time to its first step and the device (metrics WALL, CPU, PEAK_RSS, PEAK_DEVICE,
FIRST_STEP; tags DEVICE, DEVICE_NAME). repro.report.cost sums them per table."""

import os
import platform
import resource
import time
from pathlib import Path

WALL = "cost/wall_s"
# user + system time of the training process, all its threads; not the data cache's render workers
# (children of multiprocessing's forkserver, not of this process)
CPU = "cost/cpu_s"
PEAK_RSS = "cost/peak_rss_mb"  # the process's peak resident memory
PEAK_DEVICE = "cost/peak_device_mb"  # the peak of torch's CUDA allocations (on a GPU only)
# From the start of train_run to the end of its session's first optimiser step (issued: on a GPU the
# step may still be running): data, store and CLIP features ready. Per session, not summed on resume.
FIRST_STEP = "cost/first_step_s"
DEVICE = "device"  # "cpu", "cuda:0"
DEVICE_NAME = "device_name"  # the CPU model or the GPU's name


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_tags(device) -> dict[str, str]:
    """DEVICE and DEVICE_NAME of a torch.device."""
    if device.type == "cuda":
        import torch

        index = torch.cuda.current_device() if device.index is None else device.index
        # A study worker sees only its own GPU, as cuda:0; REPRO_DEVICE names it as the machine does.
        name = os.environ.get("REPRO_DEVICE", f"cuda:{index}")
        return {DEVICE: name if name.startswith("cuda") else f"cuda:{index}", DEVICE_NAME: torch.cuda.get_device_name(index)}
    return {DEVICE: device.type, DEVICE_NAME: cpu_model()}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """A run's cost since the meter started."""

    def __init__(self):
        self.wall0, self.cpu0 = time.monotonic(), _cpu_s()
        self.first_step_s = None

    def step(self, _batch: int | None = None) -> None:
        """Called after every training step; the first call sets FIRST_STEP."""
        if self.first_step_s is None:
            self.first_step_s = time.monotonic() - self.wall0

    def metrics(self, before: dict[str, float]) -> dict[str, float]:
        """The cost since the start added to `before`, the cost metrics a resumed run's earlier sessions logged."""
        # ru_maxrss is in KiB on Linux, and it is the process's peak so far: a worker process that
        # trains several runs reports for each the peak of the runs it trained up to then.
        import torch

        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = {
            WALL: before.get(WALL, 0.0) + time.monotonic() - self.wall0,
            CPU: before.get(CPU, 0.0) + _cpu_s() - self.cpu0,
            PEAK_RSS: max(before.get(PEAK_RSS, 0.0), peak_mb),
        }
        if self.first_step_s is not None:
            out[FIRST_STEP] = self.first_step_s
        if torch.cuda.is_initialized():
            out[PEAK_DEVICE] = max(before.get(PEAK_DEVICE, 0.0), torch.cuda.max_memory_allocated() / 2**20)
        return out
