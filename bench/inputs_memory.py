"""What a study worker holds in memory for the runs' inputs (run by hand).

    .venv/bin/python bench/inputs_memory.py [--preset small]

A `repro all` worker trains rows whose inputs differ only in their CLIP or in the restyled twin. This
opens, in one process as such a worker does, the inputs of a Baseline, of an IE+TE row and of a
restyled row in turn, loads every split's tensors, and prints the process's peak resident memory after
each and whether the three share their training split (repro.train.identity keeps one copy per split).
"""

import argparse
import resource

from repro.presets import preset_config
from repro.train.data import split_tensors
from repro.train.identity import open_inputs

ROWS = {
    "Baseline": {"mode": "baseline"},
    "IE+TE r=0.6": {"mode": "iete", "ratio": 0.6},
    "Re-rendered style (supervised)": {"mode": "baseline", "augment": "restyle-supervised"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    trains = []
    for row, fields in ROWS.items():
        inputs = open_inputs(preset_config(args.preset, fields))
        for split in inputs.splits.values():
            split_tensors(split)
        trains.append(inputs.splits["train"])
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"after {row}'s inputs ({', '.join(inputs.splits)}): peak RSS {peak_mb:,.0f} MB")
    print(f"one training split for all {len(trains)}: {all(t is trains[0] for t in trains)}")


if __name__ == "__main__":
    main()
