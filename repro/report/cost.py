"""What a table's cells cost: the cost metrics and device tags its training runs logged
(repro.train.cost), summed over the runs, per seed, and as the peak memory of the largest run."""

from collections import Counter, defaultdict

from repro.train.cost import CPU, DEVICE, DEVICE_NAME, PEAK_RSS, WALL


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _seed(data) -> str:
    return data.tags.get("repro.seed") or data.params.get("seed", "unknown")


def cost_facts(runs: dict[str, object]) -> list[tuple[str, str]]:
    """(label, text) lines of the compute the runs took; `runs` is the MLflow data of a table's
    training runs by run id (a run that serves several tables counts in each)."""
    measured = {i: d for i, d in runs.items() if WALL in d.metrics}
    unmeasured = len(runs) - len(measured)
    if not measured:
        return [("Compute", f"not measured: no cost metrics in the table's {_runs(len(runs))}")]
    total = f"{duration(sum(d.metrics[WALL] for d in measured.values()))} wall time, "
    total += f"{duration(sum(d.metrics[CPU] for d in measured.values()))} CPU time, summed over {_runs(len(measured))}"
    if unmeasured:
        total += f"; {_runs(unmeasured)} without cost metrics"
    per_seed = defaultdict(list)
    for data in measured.values():
        per_seed[_seed(data)].append(data)
    seeds = "; ".join(
        f"seed {seed}: {duration(sum(d.metrics[WALL] for d in ds))} wall, {duration(sum(d.metrics[CPU] for d in ds))} CPU ({_runs(len(ds))})"
        for seed, ds in sorted(per_seed.items(), key=lambda item: (len(item[0]), item[0]))  # 2 before 10
    )
    peak = max(d.metrics[PEAK_RSS] for d in measured.values())
    devices = Counter(f"{d.tags.get(DEVICE, 'unknown')} ({d.tags.get(DEVICE_NAME, 'unknown')})" for d in measured.values())
    return [
        ("Compute", total),
        ("Compute per seed", seeds),
        ("Peak memory", f"{peak:.0f} MB (the largest peak resident memory of a run's process)"),
        ("Devices", ", ".join(f"{device}: {_runs(n)}" for device, n in sorted(devices.items()))),
    ]
